import DmirrorDevice
import DmirrorMachine
#if canImport(Glibc)
import Glibc
#endif

/// How one case ended inside its own process (the kernel harness's
/// `_metadata->exit_code`, plus whether an ASSERT_* stopped it).
public enum CaseOutcome: Hashable, Sendable {
    /// KSFT_PASS.
    case passed
    /// An EXPECT_* failed and the body ran to its end (KSFT_FAIL, "Test failed").
    case expectationFailed
    /// An ASSERT_* (or an unexpected error) stopped the case after teardown
    /// (the kernel harness abort()s: "Test terminated by assertion").
    case assertionFailed(String)
    /// SKIP(): KSFT_SKIP with the reason.
    case skipped(String)

    /// The kselftest exit status a case process ends with.
    public var exitCode: Int32 {
        switch self {
        case .passed: KSFTExit.pass
        case .expectationFailed, .assertionFailed: KSFTExit.fail
        case .skipped: KSFTExit.skip
        }
    }
}

/// kselftest.h exit codes.
public enum KSFTExit {
    public static let pass: Int32 = 0
    public static let fail: Int32 = 1
    public static let xfail: Int32 = 2
    public static let xpass: Int32 = 3
    public static let skip: Int32 = 4
}

/// Runs one case in this process the way TEST_F's grandchild does:
/// FIXTURE_SETUP, the body, FIXTURE_TEARDOWN.
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
public enum CaseExecutor {
    /// Writes one raw line (no prefix added) to the case's stderr.
    public static let standardError: @Sendable (String) -> Void = { line in
        var text = line + "\n"
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                offset += n
            }
        }
    }

    /// Runs `suiteCase` on `machine`. `stderr` receives the lines the kernel
    /// harness writes to stderr (TH_LOG text is "# "-prefixed by the caller's context).
    public static func run(_ suiteCase: SuiteCase, on machine: any Machine,
                           stderr: @escaping @Sendable (String) -> Void = CaseExecutor.standardError) -> CaseOutcome {
        // HUGETLB_SETUP_DEFAULT_PAGES(1): the C suite's constructor.
        machine.reserveHugePages(1)

        let context = TestContext(machine: machine, variant: suiteCase.variant, testName: suiteCase.test.name,
                                  log: { stderr("# " + $0) })

        // FIXTURE_SETUP
        if let early = setUp(context, suiteCase.variant, stderr: stderr) {
            return early
        }

        // The body.
        var assertion: String?
        var skipReason: String?
        do {
            try suiteCase.test.body(context)
        } catch let interruption as CaseInterruption {
            switch interruption {
            case .assertionFailed(let message): assertion = message
            case .skipped(let reason):
                stderr("#      SKIP      \(reason)")
                skipReason = reason
            }
        } catch let error as DmirrorError {
            if case .unsupported = error {
                // A command this kernel's ABI lacks: the case cannot run here.
                stderr("#      SKIP      \(error.description)")
                skipReason = error.description
            } else {
                assertion = unexpected(error, suiteCase, stderr)
            }
        } catch {
            assertion = unexpected(error, suiteCase, stderr)
        }

        // FIXTURE_TEARDOWN
        if let failure = tearDown(context) {
            assertion = assertion ?? failure
        }

        if let assertion { return .assertionFailed(assertion) }
        if let skipReason { return .skipped(skipReason) }
        return context.hasFailedExpectation ? .expectationFailed : .passed
    }

    /// FIXTURE_SETUP(hmm) / FIXTURE_SETUP(hmm2). Returns the outcome if setup ended the case.
    static func setUp(_ context: TestContext, _ variant: Variant,
                      stderr: @Sendable (String) -> Void) -> CaseOutcome? {
        let names = variant.devices.count == 1 ? ["self->fd"] : (0..<variant.devices.count).map { "self->fd\($0)" }
        for (index, unit) in variant.devices.enumerated() {
            do {
                context.devices.append(try context.machine.openMirror(unit: unit))
            } catch {
                stderr("could not open hmm dmirror driver (/dev/hmm_dmirror\(unit))")
                if index == 0 && variant.isCoherent {
                    let reason = "DEVICE_COHERENT not available"
                    stderr("#      SKIP      \(reason)")
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

    /// FIXTURE_TEARDOWN: close each device, ASSERT_EQ(ret, 0). Returns the assertion text on failure.
    static func tearDown(_ context: TestContext) -> String? {
        for device in context.devices {
            let ret: Int32
            do {
                try device.close()
                ret = 0
            } catch {
                ret = -1
            }
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

    private static func unexpected(_ error: any Error, _ suiteCase: SuiteCase,
                                   _ stderr: @Sendable (String) -> Void) -> String {
        let text = "\(suiteCase.test.name): unexpected error: \(error)"
        stderr("# " + text)
        return text
    }
}
