import Foundation
import Testing
@testable import Harness
@testable import Suite

/// The report lines, checked against the kernel harness's format strings
/// (kselftest.h / kselftest_harness.h, Linux 7.3).
@Suite("Harness: TAP and JSON output")
struct HarnessTAPTests {
    @Test("RUN, OK/FAIL and ok/not ok lines have the kernel's exact shape")
    func caseLines() {
        let name = "hmm.hmm_device_private.open_close"
        // ksft_print_msg(" RUN           %s ...\n")
        #expect(TAP.run(name) == "#  RUN           hmm.hmm_device_private.open_close ...")
        // ksft_print_msg("         %4s  %s\n")
        #expect(TAP.result(.pass, name) == "#            OK  hmm.hmm_device_private.open_close")
        #expect(TAP.result(.skip("x"), name) == "#            OK  hmm.hmm_device_private.open_close")
        #expect(TAP.result(.fail, name) == "#          FAIL  hmm.hmm_device_private.open_close")
        // ksft_test_result_code()
        #expect(TAP.testLine(1, name, .pass) == "ok 1 hmm.hmm_device_private.open_close")
        #expect(TAP.testLine(5, name, .fail) == "not ok 5 hmm.hmm_device_private.open_close")
        #expect(TAP.testLine(37, "hmm.hmm_device_coherent.open_close", .skip("DEVICE_COHERENT not available"))
                == "ok 37 hmm.hmm_device_coherent.open_close # SKIP DEVICE_COHERENT not available")
        #expect(TAP.testLine(2, name, .skip("")) == "ok 2 hmm.hmm_device_private.open_close # SKIP unknown")
        // SKIP()'s TH_LOG line
        #expect(TAP.skipNote("DEVICE_COHERENT not available") == "#      SKIP      DEVICE_COHERENT not available")
    }

    @Test("Header, summary and Totals lines")
    func headerAndTotals() {
        #expect(TAP.header == "TAP version 13")
        #expect(TAP.plan(78) == "1..78")
        #expect(TAP.starting(tests: 78, cases: 4) == "# Starting 78 tests from 4 test cases.")

        var totals = RunTotals()
        for _ in 0..<39 { totals.add(.pass) }
        for _ in 0..<39 { totals.add(.skip("DEVICE_COHERENT not available")) }
        #expect(TAP.summary(totals) == "# PASSED: 78 / 78 tests passed.")
        #expect(TAP.counts(totals) == [
            "# 39 skipped test(s) detected. Consider enabling relevant config options to improve coverage.",
            "# Totals: pass:39 fail:0 xfail:0 xpass:0 skip:39 error:0",
        ])
        #expect(totals.exitCode == 0)

        totals.add(.fail)
        #expect(TAP.summary(totals) == "# FAILED: 78 / 79 tests passed.")
        #expect(TAP.counts(totals).last == "# Totals: pass:39 fail:1 xfail:0 xpass:0 skip:39 error:0")
        #expect(totals.exitCode == 1)

        let clean = RunTotals([CaseResult(name: "a", testName: "a", verdict: .pass)])
        #expect(TAP.counts(clean) == ["# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"])
    }

    @Test("Exit status: 0 if nothing failed (even all skipped), 1 if anything failed")
    func exitCodes() {
        #expect(RunTotals([]).exitCode == 0)
        #expect(RunTotals([CaseResult(name: "a", testName: "a", verdict: .skip("r"))]).exitCode == 0)
        #expect(RunTotals([CaseResult(name: "a", testName: "a", verdict: .pass),
                           CaseResult(name: "b", testName: "b", verdict: .fail)]).exitCode == 1)
        #expect(CaseOutcome.passed.exitCode == 0)
        #expect(CaseOutcome.expectationFailed.exitCode == 1)
        #expect(CaseOutcome.assertionFailed("x").exitCode == 1)
        #expect(CaseOutcome.skipped("x").exitCode == 4)
    }

    @Test("Process endings read as __wait_for_test() prints them")
    func endings() {
        #expect(TAP.diagnostic("migrate", TAP.Ending.timeout) == "# migrate: Test terminated by timeout")
        #expect(TAP.diagnostic("migrate", TAP.Ending.assertion) == "# migrate: Test terminated by assertion")
        #expect(TAP.diagnostic("migrate", TAP.Ending.signal(11)) == "# migrate: Test terminated unexpectedly by signal 11")
        #expect(TAP.diagnostic("migrate", TAP.Ending.failed) == "# migrate: Test failed")
    }

    @Test("The TAP reporter prints a whole run in the kernel's order, TAP version first")
    func reporterRun() {
        let sink = MemorySink()
        let reporter = TAPReporter(sink: sink)
        let cases = HarnessFixtures.cases(["open_close", "anon_read"], variants: [.hmmDevicePrivate, .hmmDeviceCoherent])
        let backend = BackendInfo(name: "sim", detail: "simulated Linux 7.3 test_hmm", abi: "7.3")
        let verdicts: [Verdict] = [.pass, .fail, .skip("DEVICE_COHERENT not available"), .skip("DEVICE_COHERENT not available")]
        let results = zip(cases, verdicts).map { testCase, verdict in
            CaseResult(name: testCase.name.description, testName: testCase.name.test, verdict: verdict,
                       diagnostics: verdict == .fail ? [TAP.diagnostic(testCase.name.test, TAP.Ending.assertion)] : [])
        }
        let totals = ReporterDriver.run(reporter, cases, results, backend: backend)
        #expect(totals.exitCode == 1)
        #expect(sink.stdoutLines == [
            "TAP version 13",
            "# dmirror: backend sim (simulated Linux 7.3 test_hmm)",
            "1..4",
            "# Starting 4 tests from 2 test cases.",
            "#  RUN           hmm.hmm_device_private.open_close ...",
            "#            OK  hmm.hmm_device_private.open_close",
            "ok 1 hmm.hmm_device_private.open_close",
            "#  RUN           hmm.hmm_device_private.anon_read ...",
            "#          FAIL  hmm.hmm_device_private.anon_read",
            "not ok 2 hmm.hmm_device_private.anon_read",
            "#  RUN           hmm.hmm_device_coherent.open_close ...",
            "#            OK  hmm.hmm_device_coherent.open_close",
            "ok 3 hmm.hmm_device_coherent.open_close # SKIP DEVICE_COHERENT not available",
            "#  RUN           hmm.hmm_device_coherent.anon_read ...",
            "#            OK  hmm.hmm_device_coherent.anon_read",
            "ok 4 hmm.hmm_device_coherent.anon_read # SKIP DEVICE_COHERENT not available",
            "# FAILED: 3 / 4 tests passed.",
            "# 2 skipped test(s) detected. Consider enabling relevant config options to improve coverage.",
            "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:2 error:0",
        ])
        #expect(sink.stderrLines == ["# anon_read: Test terminated by assertion"])
        // The diagnostic comes before the FAIL line, as in the kernel harness.
        let all = sink.lines.map(\.text)
        #expect(all.firstIndex(of: "# anon_read: Test terminated by assertion")! < all.firstIndex(of: "#          FAIL  hmm.hmm_device_private.anon_read")!)
    }

    @Test("KSFT_TAP_LEVEL drops the version line, as ksft_print_header() does")
    func tapLevel() {
        let sink = MemorySink()
        TAPReporter(sink: sink, printsVersion: false)
            .runStarted(backend: BackendInfo(name: "sim", detail: "d", abi: "7.3"), plan: RunPlan(cases: []))
        #expect(sink.stdoutLines == ["# dmirror: backend sim (d)", "1..0", "# Starting 0 tests from 0 test cases."])
    }

    @Test("The JSON document parses and carries backend, cases and totals")
    func jsonDocument() throws {
        let results = [
            CaseResult(name: "hmm.hmm_device_private.open_close", testName: "open_close", verdict: .pass,
                       duration: 0.0125, output: "line \"1\"\n\ttab\u{1}\n"),
            CaseResult(name: "hmm.hmm_device_coherent.open_close", testName: "open_close",
                       verdict: .skip("DEVICE_COHERENT not available"), duration: 1.5),
            CaseResult(name: "hmm.hmm_device_private.migrate", testName: "migrate", verdict: .fail,
                       failureReason: "Test terminated by timeout", duration: 30),
        ]
        let text = JSONReporter.document(backend: BackendInfo(name: "kernel", detail: "Linux 7.3.4, ABI 7.3, /dev/hmm_dmirror0", abi: "7.3"),
                                         results: results, totals: RunTotals(results))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let backend = try #require(object["backend"] as? [String: Any])
        #expect(backend["name"] as? String == "kernel")
        #expect(backend["abi"] as? String == "7.3")
        let cases = try #require(object["cases"] as? [[String: Any]])
        #expect(cases.count == 3)
        #expect(cases[0]["verdict"] as? String == "pass")
        #expect(cases[0]["reason"] is NSNull)
        #expect(cases[0]["output"] as? String == "line \"1\"\n\ttab\u{1}\n")
        #expect((cases[0]["duration"] as? Double).map { abs($0 - 0.0125) < 1e-9 } == true)
        #expect(cases[1]["verdict"] as? String == "skip")
        #expect(cases[1]["reason"] as? String == "DEVICE_COHERENT not available")
        #expect(cases[2]["verdict"] as? String == "fail")
        #expect(cases[2]["reason"] as? String == "Test terminated by timeout")
        let totals = try #require(object["totals"] as? [String: Int])
        #expect(totals == ["pass": 1, "fail": 1, "xfail": 0, "xpass": 0, "skip": 1, "error": 0])
        #expect(object["passed"] as? Bool == false)

        let empty = JSONReporter.document(backend: BackendInfo(name: "sim", detail: "", abi: "7.3"), results: [], totals: RunTotals())
        #expect(try JSONSerialization.jsonObject(with: Data(empty.utf8)) is [String: Any])
    }

    @Test("The verdict line round-trips, tabs and newlines flattened")
    func verdictChannel() {
        for outcome: CaseOutcome in [.passed, .expectationFailed, .assertionFailed("a.swift:1:t:Expected x (1) == 2"), .skipped("no\tway\nhere")] {
            let decoded = VerdictChannel.decode(VerdictChannel.encode(outcome))
            switch outcome {
            case .skipped: #expect(decoded == .skipped("no way here"))
            default: #expect(decoded == outcome)
            }
        }
        #expect(VerdictChannel.decode("") == nil)
        #expect(VerdictChannel.decode("garbage") == nil)
    }
}

/// Feeds a reporter the events of a run, in plan order, the way `SuiteRunner` does.
enum ReporterDriver {
    @discardableResult
    static func run(_ reporter: SuiteReporter, _ cases: [TestCase], _ results: [CaseResult], backend: BackendInfo) -> RunTotals {
        reporter.runStarted(backend: backend, plan: RunPlan(cases: cases))
        for (index, (testCase, result)) in zip(cases, results).enumerated() {
            reporter.caseStarted(index + 1, testCase)
            reporter.caseFinished(index + 1, result)
        }
        let totals = RunTotals(results)
        reporter.runFinished(results, totals: totals)
        return totals
    }
}
