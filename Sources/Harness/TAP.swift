
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

