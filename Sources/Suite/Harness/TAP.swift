#if canImport(Glibc)
import Glibc
#endif

/// The kernel harness's output lines (kselftest.h and kselftest_harness.h),
/// byte for byte, without the trailing newline.
public enum TAP {
    /// ksft_print_header(): omitted when KSFT_TAP_LEVEL is set in the environment.
    public static let header = "TAP version 13"

    /// ksft_set_plan().
    public static func plan(_ count: Int) -> String { "1..\(count)" }

    /// "# Starting %u tests from %u test cases."
    public static func starting(tests: Int, cases: Int) -> String {
        "# Starting \(tests) tests from \(cases) test cases."
    }

    /// ksft_print_msg(" RUN           %s ...").
    public static func run(_ name: String) -> String { "#  RUN           \(name) ..." }

    /// ksft_print_msg("         %4s  %s"): "OK" for a pass or a skip, "FAIL" otherwise.
    public static func result(_ verdict: Verdict, _ name: String) -> String {
        let word = verdict.countsAsPassed ? "OK" : "FAIL"
        return "#          \(String(repeating: " ", count: 4 - word.count))\(word)  \(name)"
    }

    /// ksft_test_result_code(): "ok N name", "ok N name # SKIP reason", "not ok N name".
    public static func testLine(_ number: Int, _ name: String, _ verdict: Verdict) -> String {
        switch verdict {
        case .pass: "ok \(number) \(name)"
        case .fail: "not ok \(number) \(name)"
        case .skip(let reason): "ok \(number) \(name) # SKIP \(reason.isEmpty ? "unknown" : reason)"
        }
    }

    /// SKIP()'s TH_LOG line (stderr).
    public static func skipNote(_ reason: String) -> String { "#      SKIP      \(reason)" }

    /// "# PASSED: x / N tests passed." or "# FAILED: x / N tests passed."
    public static func summary(_ totals: RunTotals) -> String {
        "# \(totals.succeeded ? "PASSED" : "FAILED"): \(totals.passedCount) / \(totals.total) tests passed."
    }

    /// ksft_print_cnts(): the optional skip hint, then the Totals line.
    public static func counts(_ totals: RunTotals) -> [String] {
        var lines: [String] = []
        if totals.skip > 0 {
            lines.append("# \(totals.skip) skipped test(s) detected. Consider enabling relevant config options to improve coverage.")
        }
        lines.append("# Totals: pass:\(totals.pass) fail:\(totals.fail) xfail:\(totals.xfail) xpass:\(totals.xpass) skip:\(totals.skip) error:\(totals.error)")
        return lines
    }

    /// __wait_for_test()'s diagnostics (stderr), without the "# <test>: " prefix.
    public enum Ending {
        public static let timeout = "Test terminated by timeout"
        public static let assertion = "Test terminated by assertion"
        public static let failed = "Test failed"
        public static func signal(_ number: Int32) -> String { "Test terminated unexpectedly by signal \(number)" }
        public static func other(_ status: Int32) -> String { "Test ended in some other way [\(status)]" }
    }

    /// "# <test>: <ending>".
    public static func diagnostic(_ testName: String, _ ending: String) -> String { "# \(testName): \(ending)" }
}

/// Where a reporter writes: the parent's stdout and stderr, or memory in tests.
public protocol ReportSink: AnyObject {
    func out(_ line: String)
    func err(_ line: String)
    /// Raw bytes a case wrote, to stream 1 (stdout) or 2 (stderr).
    func write(_ stream: Int32, _ bytes: [UInt8])
    /// Whether stdout and stderr reach the same file, pipe or terminal.
    var streamsShareDestination: Bool { get }
}

extension ReportSink {
    /// As lines (a last line without its newline still counts).
    public func write(_ stream: Int32, _ bytes: [UInt8]) {
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for line in lines { stream == 2 ? err(String(line)) : out(String(line)) }
    }

    public var streamsShareDestination: Bool { false }
}

/// Lines straight to fd 1 and fd 2 with write(2): nothing is buffered, so
/// the parent's lines and the case processes' output interleave in order.
public final class StandardSink: ReportSink {
    public init() {}
    public func out(_ line: String) { FDWrite.line(1, line) }
    public func err(_ line: String) { FDWrite.line(2, line) }
    public func write(_ stream: Int32, _ bytes: [UInt8]) { FDWrite.bytes(stream == 2 ? 2 : 1, bytes) }

    /// fd 1 and fd 2 are the same file (same device and inode: 2>&1, one terminal, /dev/null).
    public var streamsShareDestination: Bool {
        var out = stat()
        var err = stat()
        guard fstat(1, &out) == 0, fstat(2, &err) == 0 else { return false }
        return out.st_dev == err.st_dev && out.st_ino == err.st_ino
    }
}

/// Collects lines (for tests).
public final class MemorySink: ReportSink {
    public private(set) var lines: [(stream: Int, text: String)] = []
    public init() {}
    public func out(_ line: String) { lines.append((1, line)) }
    public func err(_ line: String) { lines.append((2, line)) }
    public var stdoutLines: [String] { lines.filter { $0.stream == 1 }.map(\.text) }
    public var stderrLines: [String] { lines.filter { $0.stream == 2 }.map(\.text) }
}

enum FDWrite {
    static func line(_ fd: Int32, _ line: String) {
        all(fd, line + "\n")
    }

    static func all(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { write(fd, $0) }
    }

    static func bytes(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { write(fd, $0) }
    }

    private static func write(_ fd: Int32, _ buffer: UnsafeBufferPointer<UInt8>) {
        guard var base = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let n = Glibc.write(fd, base, left)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            base += n
            left -= n
        }
    }
}
