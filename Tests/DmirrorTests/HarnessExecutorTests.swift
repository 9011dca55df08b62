import ABI
import MachineInterface
import Synchronization
import Testing
@testable import Harness
@testable import Suite

/// A Machine that only opens and closes device files, recording what happens;
/// everything else fails with ENOSYS. Enough for FIXTURE_SETUP/TEARDOWN.
final class HarnessFakeMachine: Machine, @unchecked Sendable {
    /// Units whose open fails (ENOENT).
    let missingUnits: Set<Int>
    /// Units whose close fails (EIO).
    let failingCloseUnits: Set<Int>
    let events = Mutex<[String]>([])
    let reserved = Mutex(0)

    init(missing: Set<Int> = [], failingClose: Set<Int> = []) {
        missingUnits = missing
        failingCloseUnits = failingClose
    }

    func record(_ event: String) { events.withLock { $0.append(event) } }
    var log: [String] { events.withLock { $0 } }

    final class File: DmirrorFile, @unchecked Sendable {
        let unit: Int
        let machine: HarnessFakeMachine
        init(unit: Int, machine: HarnessFakeMachine) { self.unit = unit; self.machine = machine }
        func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> { .failure(.ENOTTY) }
        func close() throws(Errno) {
            machine.record("close \(unit)")
            if machine.failingCloseUnits.contains(unit) { throw .EIO }
        }
    }

    var pageSize: Int { 4096 }
    var pmdPageSize: Int { 2 << 20 }
    var defaultHugePageSize: Int { 2 << 20 }
    func freeHugePages() -> Int { 0 }
    func reserveHugePages(_ count: Int) -> Bool { reserved.withLock { $0 += count }; return true }
    func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags, source: MappingSource,
              offset: Int) throws(Errno) -> UInt64 { throw .ENOSYS }
    func munmap(_ address: UInt64, length: Int) throws(Errno) { throw .ENOSYS }
    func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) { throw .ENOSYS }
    func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) { throw .ENOSYS }
    func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags, newAddress: UInt64?) throws(Errno) -> UInt64 {
        throw .ENOSYS
    }
    func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {}
    func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) {}
    func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile { throw .ENOSYS }
    func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        record("open \(unit)")
        if missingUnits.contains(unit) { throw .ENOENT }
        return MirrorDevice(file: File(unit: unit, machine: self), abi: .newest)
    }
    func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 { throw .ENOSYS }
    func openGupTest() throws(Errno) -> any GupTestFile { throw .ENOSYS }
    func userfaultfd() throws(Errno) -> any UserfaultFile { throw .ENOSYS }
    func eventfd() throws(Errno) -> any EventFile { throw .ENOSYS }
    func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread { throw .ENOSYS }
    func sleep(nanoseconds: UInt64) {}
    func random() -> UInt32 { 4 }
    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess { throw .ENOSYS }
}

/// Collects the lines a case writes to stderr.
final class LineLog: Sendable {
    let lines = Mutex<[String]>([])
    var writer: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
    var all: [String] { lines.withLock { $0 } }
}

/// CaseExecutor: FIXTURE_SETUP, body, FIXTURE_TEARDOWN as TEST_F runs them.
@Suite("Harness: running a case in one process")
struct HarnessExecutorTests {
    func run(_ variant: Variant, machine: HarnessFakeMachine, log: LineLog = LineLog(),
             body: @escaping @Sendable (TestContext) throws -> Void) -> CaseOutcome {
        let test = TestDefinition(variant.fixture, "probe", body: body)
        return FixtureRun(test: test, variant: variant).execute(on: machine, log: log.writer)
    }

    @Test("A passing case reserves a huge page, opens its devices, runs, closes them in order")
    func passing() {
        let machine = HarnessFakeMachine()
        let outcome = run(.hmm2DevicePrivate, machine: machine) { context in
            machine.record("body \(context.fd0.unit) \(context.fd1.unit)")
        }
        #expect(outcome == .passed)
        #expect(machine.log == ["open 0", "open 1", "body 0 1", "close 0", "close 1"])
        #expect(machine.reserved.withLock { $0 } == 1)
    }

    @Test("A coherent variant without its device skips in setup; body and teardown do not run")
    func coherentSkip() {
        let machine = HarnessFakeMachine(missing: [2, 3])
        let log = LineLog()
        let outcome = run(.hmmDeviceCoherent, machine: machine, log: log) { _ in machine.record("body") }
        #expect(outcome == .skipped("DEVICE_COHERENT not available"))
        #expect(machine.log == ["open 2"])
        #expect(log.all == ["could not open hmm dmirror driver (/dev/hmm_dmirror2)",
                            "#      SKIP      DEVICE_COHERENT not available"])
        #expect(outcome.exitCode == 4)
    }

    @Test("A private variant without its device fails the setup ASSERT; no teardown")
    func privateMissing() {
        let machine = HarnessFakeMachine(missing: [0])
        let log = LineLog()
        let outcome = run(.hmmDevicePrivate, machine: machine, log: log) { _ in machine.record("body") }
        guard case .assertionFailed(let message) = outcome else {
            Issue.record("expected an assertion failure, got \(outcome)")
            return
        }
        #expect(message.hasSuffix(":probe:Expected self->fd (-1) >= 0"))
        #expect(machine.log == ["open 0"])
        #expect(log.all.first == "could not open hmm dmirror driver (/dev/hmm_dmirror0)")
        #expect(log.all.count == 2)
        #expect(log.all.last?.hasPrefix("# ") == true)
    }

    @Test("hmm2: the second device missing is an ASSERT even for a coherent variant")
    func secondDeviceMissing() {
        let machine = HarnessFakeMachine(missing: [3])
        let outcome = run(.hmm2DeviceCoherent, machine: machine) { _ in machine.record("body") }
        guard case .assertionFailed(let message) = outcome else {
            Issue.record("expected an assertion failure, got \(outcome)")
            return
        }
        #expect(message.hasSuffix("Expected self->fd1 (-1) >= 0"))
        #expect(machine.log == ["open 2", "open 3"])
    }

    @Test("Teardown runs after an ASSERT in the body")
    func teardownAfterAssert() {
        let machine = HarnessFakeMachine()
        let log = LineLog()
        let outcome = run(.hmmDevicePrivate, machine: machine, log: log) { context in
            try context.assertEqual(1, 2, "ret")
            machine.record("unreachable")
        }
        guard case .assertionFailed(let message) = outcome else {
            Issue.record("expected an assertion failure, got \(outcome)")
            return
        }
        #expect(message.contains(":probe:Expected ret (1) == 2"))
        #expect(machine.log == ["open 0", "close 0"])
        #expect(log.all == ["# " + message])
    }

    @Test("Teardown runs after a SKIP in the body; the case is skipped")
    func teardownAfterSkip() {
        let machine = HarnessFakeMachine()
        let log = LineLog()
        let outcome = run(.hmmDevicePrivate, machine: machine, log: log) { context in
            throw context.skip("Not enough huge pages")
        }
        #expect(outcome == .skipped("Not enough huge pages"))
        #expect(machine.log == ["open 0", "close 0"])
        #expect(log.all == ["#      SKIP      Not enough huge pages"])
    }

    @Test("An EXPECT failure lets the body finish and fails the case")
    func expectation() {
        let machine = HarnessFakeMachine()
        let outcome = run(.hmmDevicePrivate, machine: machine) { context in
            context.expectEqual(3, 4, "cpages")
            machine.record("after")
        }
        #expect(outcome == .expectationFailed)
        #expect(machine.log == ["open 0", "after", "close 0"])
    }

    @Test("A failing close in teardown is an ASSERT failure")
    func closeFails() {
        let machine = HarnessFakeMachine(failingClose: [0])
        let outcome = run(.hmm2DevicePrivate, machine: machine) { _ in }
        guard case .assertionFailed(let message) = outcome else {
            Issue.record("expected an assertion failure, got \(outcome)")
            return
        }
        #expect(message.contains("Expected ret (-1) == 0"))
        // ASSERT_EQ stops the teardown at fd0, as FIXTURE_TEARDOWN(hmm2) does.
        #expect(machine.log == ["open 0", "open 1", "close 0"])
    }

    @Test("A command the ABI lacks skips the case; another error fails it")
    func errors() {
        let machine = HarnessFakeMachine()
        let skipped = run(.hmmDevicePrivate, machine: machine) { _ in
            throw DmirrorError.unsupported(.flags, .v6_1)
        }
        #expect(skipped == .skipped(DmirrorError.unsupported(.flags, .v6_1).description))
        let failed = run(.hmmDevicePrivate, machine: machine) { _ in throw Errno.ENOMEM }
        guard case .assertionFailed(let message) = failed else {
            Issue.record("expected a failure, got \(failed)")
            return
        }
        #expect(message.contains("unexpected error"))
    }
}
