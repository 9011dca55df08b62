import ArgumentParser
import Harness
import Scenario
import Syscalls

/// `--format` of `scenario` and `fuzz`.
enum ScenarioFormat: String, CaseIterable, ExpressibleByArgument {
    /// Result lines as they are, `#` comments around each scenario.
    case text
    /// One JSON object per scenario as it ends (what the lab compares).
    case jsonl
}

/// Prints each scenario's report as it ends, in order: in text, its result
/// lines between `# scenario NAME` and `# NAME: pass|fail ...`; in JSON Lines,
/// one object per scenario. A line of one backend compares with the same line
/// of the other (docs/scenarios.md says how).
final class ScenarioReporter: SuiteReporter {
    let sink: ReportSink
    let format: ScenarioFormat
    /// The scenario of each case, in plan order.
    let scenarios: [Scenario]
    /// Print only failing scenarios (fuzz: thousands pass).
    let failuresOnly: Bool
    /// Called with each report (fuzz keeps the failures).
    let onReport: (Int, ScenarioReport) -> Void
    /// The backend line first, the totals last (fuzz runs batches and prints its own summary).
    let printsHeader: Bool
    let printsTotals: Bool
    private(set) var passed = 0
    private(set) var failed = 0

    init(format: ScenarioFormat, scenarios: [Scenario], failuresOnly: Bool = false, sink: ReportSink = StandardSink(),
         printsHeader: Bool = true, printsTotals: Bool = true,
         onReport: @escaping (Int, ScenarioReport) -> Void = { _, _ in }) {
        self.sink = sink
        self.format = format
        self.scenarios = scenarios
        self.failuresOnly = failuresOnly
        self.printsHeader = printsHeader
        self.printsTotals = printsTotals
        self.onReport = onReport
    }

    var capturesOutput: Bool { true }

    func runStarted(backend: BackendInfo, plan: RunPlan) {
        guard printsHeader else { return }
        switch format {
        case .text: sink.out(backend.tapComment)
        case .jsonl:
            sink.out("{\"backend\": {\"name\": \(JSON.quote(backend.name)), \"detail\": \(JSON.quote(backend.detail)), "
                     + "\"abi\": \(JSON.quote(backend.abi))}, \"scenarios\": \(plan.cases.count)}")
        }
    }

    func caseStarted(_ number: Int, _ testCase: TestCase) {}

    func caseFinished(_ number: Int, _ result: CaseResult) {
        let scenario = scenarios[number - 1]
        let report = ScenarioCase.report(result, scenario: scenario)
        if report.passed { passed += 1 } else { failed += 1 }
        onReport(number - 1, report)
        if failuresOnly && report.passed { return }
        switch format {
        case .text:
            sink.out("# scenario \(scenario.name)")
            for line in report.lines { sink.out(line) }
            sink.out("# \(scenario.name): " + (report.passed ? "pass" : "fail: " + report.reasons.joined(separator: "; ")))
        case .jsonl:
            let lines = report.lines.map(JSON.quote).joined(separator: ", ")
            let reasons = report.reasons.map(JSON.quote).joined(separator: ", ")
            sink.out("{\"scenario\": \(JSON.quote(scenario.name)), \"passed\": \(report.passed), "
                     + "\"reasons\": [\(reasons)], \"lines\": [\(lines)]}")
        }
    }

    func runFinished(_ results: [CaseResult], totals: RunTotals) {
        guard printsTotals else { return }
        switch format {
        case .text: sink.out("# scenarios: \(passed) passed, \(failed) failed")
        case .jsonl: sink.out("{\"totals\": {\"passed\": \(passed), \"failed\": \(failed)}, \"passed\": \(failed == 0)}")
        }
    }
}

/// Writes one result line to stdout (one write(2), so a crash right after loses nothing).
let scenarioEmit: @Sendable (String) -> Void = { line in
    try? Sys.writeAll(.standardOutput, line + "\n")
}

/// A scenario process's CPU access that faults ends it with the kernel's default action: no
/// backtrace (the result line says what happened, and a backtrace would cost a third of a second).
let quietFaults: @Sendable () -> Void = {
    Sys.restoreDefault(.segv)
    Sys.restoreDefault(.bus)
}
