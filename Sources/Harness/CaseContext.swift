import SystemPackage
import Syscalls

/// How a case body stops early: an ASSERT_* that failed, or a SKIP().
public enum CaseInterruption: Error, Sendable {
    /// ASSERT_*: the message is already logged; teardown runs, then the case fails.
    case assertionFailed(String)
    /// SKIP(return, reason).
    case skipped(String)
}

/// The assertion vocabulary of kselftest_harness.h a case body uses:
/// ASSERT_* (stop the case), EXPECT_* (record and go on), SKIP() and TH_LOG.
/// A fixture's own state (the suite's devices, say) lives in a subclass.
///
/// A context lives in exactly one case process; it is not shared across threads.
open class CaseContext: @unchecked Sendable {
    /// The test's own name, as failure lines name it.
    public let testName: String

    /// Set by a failed EXPECT_*; the case fails at its end.
    public private(set) var hasFailedExpectation = false

    /// Where TH_LOG and assertion text goes (stderr, "# "-prefixed like the kernel harness).
    let log: @Sendable (String) -> Void

    public init(testName: String, log: @escaping @Sendable (String) -> Void) {
        self.testName = testName
        self.log = { log("# " + $0) }
    }

    /// TH_LOG.
    public func note(_ message: String) { log(message) }

    /// ksft_print_msg(): "# <line>" on stdout, written at once (a crash right after loses nothing).
    public func message(_ line: String) {
        try? Sys.writeAll(FileDescriptor.standardOutput, "# \(line)\n")
    }

    /// ksft_print_msg(fmt, ...) with C's printf formatting.
    public func message(format: String, _ arguments: CVarArg...) {
        message(Sys.format(format, arguments))
    }

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
