import ABI
import Harness
import MachineInterface

/// One test in one variant, run in this process the way TEST_F's grandchild
/// runs it: FIXTURE_SETUP, the body, FIXTURE_TEARDOWN.
///
/// - Setup opens every `variant.devices` unit. A failed open prints
///   "could not open hmm dmirror driver (/dev/hmm_dmirrorN)"; if it is the
///   first device of a coherent variant the case is skipped with
///   "DEVICE_COHERENT not available", otherwise it is an ASSERT failure.
/// - A SKIP or ASSERT in setup ends the case without teardown (the kernel's
///   `no_teardown` is still set).
/// - Teardown closes each device and asserts that close succeeded; it runs
///   after the body returns, after a SKIP in the body and after an ASSERT in
///   the body.
struct FixtureRun {
    let test: TestDefinition
    let variant: Variant

    func execute(on machine: any Machine, log: @escaping @Sendable (String) -> Void) -> CaseOutcome {
        // HUGETLB_SETUP_DEFAULT_PAGES(1): the C suite's constructor.
        machine.reserveHugePages(1)
        let context = TestContext(machine: machine, variant: variant, testName: test.name, log: log)

        if let early = setUp(context, log: log) { return early }

        var assertion: String?
        var skipReason: String?
        do {
            try test.body(context)
        } catch let interruption as CaseInterruption {
            switch interruption {
            case .assertionFailed(let message): assertion = message
            case .skipped(let reason):
                log(TAP.skipNote(reason))
                skipReason = reason
            }
        } catch let error as DmirrorError {
            if case .unsupported = error {
                // A command this kernel's ABI lacks: the case cannot run here.
                log(TAP.skipNote(error.description))
                skipReason = error.description
            } else {
                assertion = unexpected(error, log)
            }
        } catch {
            assertion = unexpected(error, log)
        }

        // A model of the kernel also answers for its own state: a stale device mapping,
        // a map count off, an invalidation left open fail the case as a wrong answer would.
        let model = machine as? any MachineIntrospection
        if assertion == nil, let violation = model?.invariantViolations().first {
            assertion = "simulator invariant: \(violation)"
            log("# \(test.name): \(assertion!)")
        }
        if let failure = tearDown(context) { assertion = assertion ?? failure }
        if assertion == nil, let report = model?.checkerReports().first {
            assertion = "simulator checker: \(report)"
            log("# \(test.name): \(assertion!)")
        }

        if let assertion { return .assertionFailed(assertion) }
        if let skipReason { return .skipped(skipReason) }
        return context.hasFailedExpectation ? .expectationFailed : .passed
    }

    /// FIXTURE_SETUP(hmm) / FIXTURE_SETUP(hmm2). The outcome if setup ended the case.
    func setUp(_ context: TestContext, log: @Sendable (String) -> Void) -> CaseOutcome? {
        let names = variant.devices.count == 1 ? ["self->fd"] : (0..<variant.devices.count).map { "self->fd\($0)" }
        for (index, unit) in variant.devices.enumerated() {
            do {
                context.devices.append(try context.machine.openMirror(unit: unit))
            } catch {
                log("could not open hmm dmirror driver (/dev/hmm_dmirror\(unit))")
                if index == 0 && variant.isCoherent {
                    let reason = "DEVICE_COHERENT not available"
                    log(TAP.skipNote(reason))
                    return .skipped(reason)
                }
                do {
                    try context.assertGreaterOrEqual(-1, 0, names[index])
                } catch let CaseInterruption.assertionFailed(message) {
                    return .assertionFailed(message)
                } catch {
                    return .assertionFailed("\(error)")
                }
            }
        }
        return nil
    }

    /// FIXTURE_TEARDOWN: close each device, ASSERT_EQ(ret, 0). The assertion text on failure.
    func tearDown(_ context: TestContext) -> String? {
        for device in context.devices {
            let ret: Int32 = (try? device.close()) != nil ? 0 : -1
            do {
                try context.assertEqual(ret, 0, "ret")
            } catch let CaseInterruption.assertionFailed(message) {
                return message
            } catch {
                return "\(error)"
            }
        }
        return nil
    }

    private func unexpected(_ error: any Error, _ log: @Sendable (String) -> Void) -> String {
        let text = "\(test.name): unexpected error: \(error)"
        log("# " + text)
        return text
    }
}
