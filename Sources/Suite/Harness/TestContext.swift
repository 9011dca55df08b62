import DmirrorDevice
import DmirrorMachine
#if canImport(Glibc)
import Glibc
#endif

/// How a case body stops early: an ASSERT_* that failed, or a SKIP().
public enum CaseInterruption: Error, Sendable {
    /// ASSERT_*: the message is already logged; teardown runs, then the case fails.
    case assertionFailed(String)
    /// SKIP(return, reason).
    case skipped(String)
}

/// The fixture state and assertion vocabulary a test body sees (the C suite's
/// `self`, `variant`, `_metadata` and ASSERT_/EXPECT_ macros).
///
/// A context lives in exactly one case process; it is not shared across threads
/// except for reading `machine` and the device files.
public final class TestContext: @unchecked Sendable {
    public let machine: any Machine
    public let variant: Variant
    public let testName: String
    /// self->page_size, self->page_shift.
    public let pageSize: Int
    public let pageShift: Int

    /// FIXTURE(hmm): the one device file.
    public var fd: MirrorDevice { devices[0] }
    /// FIXTURE(hmm2): the two device files.
    public var fd0: MirrorDevice { devices[0] }
    public var fd1: MirrorDevice { devices[1] }
    /// Devices opened by setup, in `variant.devices` order.
    public internal(set) var devices: [MirrorDevice] = []

    /// Set by a failed EXPECT_*; the case fails at its end.
    public private(set) var hasFailedExpectation = false

    /// Where TH_LOG and assertion text goes (stderr, "# "-prefixed like the kernel harness).
    let log: @Sendable (String) -> Void

    public init(machine: any Machine, variant: Variant, testName: String,
                log: @escaping @Sendable (String) -> Void = TestContext.standardErrorLog) {
        self.machine = machine
        self.variant = variant
        self.testName = testName
        self.pageSize = machine.pageSize
        self.pageShift = machine.pageSize.trailingZeroBitCount
        self.log = log
    }

    public static let standardErrorLog: @Sendable (String) -> Void = { line in
        var text = "# \(line)\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// hmm_is_coherent_type(variant->device_number).
    public var isCoherent: Bool { variant.isCoherent }

    /// TH_LOG.
    public func note(_ message: String) { log(message) }

    // MARK: ASSERT_* (stop the case)

    public func assertEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String = "",
                                          fileID: StaticString = #fileID, line: UInt = #line) throws {
        if actual != expected {
            throw fail("Expected \(label(what(), actual)) == \(expected)", fileID, line)
        }
    }

    public func assertNotEqual<T: Equatable>(_ actual: T, _ unexpected: T, _ what: @autoclosure () -> String = "",
                                             fileID: StaticString = #fileID, line: UInt = #line) throws {
        if actual == unexpected {
            throw fail("Expected \(label(what(), actual)) != \(unexpected)", fileID, line)
        }
    }

    public func assertGreaterOrEqual<T: Comparable>(_ actual: T, _ bound: T, _ what: @autoclosure () -> String = "",
                                                     fileID: StaticString = #fileID, line: UInt = #line) throws {
        if !(actual >= bound) {
            throw fail("Expected \(label(what(), actual)) >= \(bound)", fileID, line)
        }
    }

    public func assertTrue(_ condition: Bool, _ what: @autoclosure () -> String,
                           fileID: StaticString = #fileID, line: UInt = #line) throws {
        if !condition { throw fail("Expected \(what())", fileID, line) }
    }

    /// `for (i...) ASSERT_EQ(ptr[i], expected(i))`: reports the first mismatch only.
    public func assertElements<T: Equatable>(_ values: some Collection<T>, _ what: @autoclosure () -> String,
                                             fileID: StaticString = #fileID, line: UInt = #line,
                                             equal expected: (Int) -> T) throws {
        for (i, value) in values.enumerated() where value != expected(i) {
            throw fail("Expected \(what())[\(i)] (\(value)) == \(expected(i))", fileID, line)
        }
    }

    // MARK: EXPECT_* (record and continue)

    public func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String = "",
                                          fileID: StaticString = #fileID, line: UInt = #line) {
        if actual != expected {
            _ = fail("Expected \(label(what(), actual)) == \(expected)", fileID, line)
            hasFailedExpectation = true
        }
    }

    public func expectTrue(_ condition: Bool, _ what: @autoclosure () -> String,
                           fileID: StaticString = #fileID, line: UInt = #line) {
        if !condition {
            _ = fail("Expected \(what())", fileID, line)
            hasFailedExpectation = true
        }
    }

    // MARK: SKIP

    /// SKIP(return, reason): ends the case as skipped.
    public func skip(_ reason: String) -> CaseInterruption { .skipped(reason) }

    private func label<T>(_ what: String, _ value: T) -> String {
        what.isEmpty ? "\(value)" : "\(what) (\(value))"
    }

    private func fail(_ message: String, _ fileID: StaticString, _ line: UInt) -> CaseInterruption {
        let file = "\(fileID)".split(separator: "/").last.map(String.init) ?? "\(fileID)"
        let text = "\(file):\(line):\(testName):\(message)"
        log(text)
        return .assertionFailed(text)
    }
}
