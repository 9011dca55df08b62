/// test_harness_run(): the header, each enabled case in order (isolated by
/// the launcher), the summary. Returns the totals; `totals.exitCode` is the
/// process's exit status (0 if nothing failed, even if all skipped; 1 otherwise).
public struct SuiteRunner {
    /// Runs one case; the flag says whether to capture its output.
    public var launch: (SuiteCase, Bool) -> CaseResult
    public var reporter: SuiteReporter

    public init(reporter: SuiteReporter, launch: @escaping (SuiteCase, Bool) -> CaseResult) {
        self.reporter = reporter
        self.launch = launch
    }

    /// Runs each case in its own process through `launcher`.
    public init(reporter: SuiteReporter, launcher: IsolatedCaseLauncher) {
        self.init(reporter: reporter) { launcher.run($0, captureOutput: $1) }
    }

    @discardableResult
    public func run(_ plan: RunPlan, backend: BackendInfo) -> RunTotals {
        reporter.runStarted(backend: backend, plan: plan)
        var results: [CaseResult] = []
        var totals = RunTotals()
        for (index, suiteCase) in plan.cases.enumerated() {
            reporter.caseStarted(index + 1, suiteCase)
            let result = launch(suiteCase, reporter.capturesOutput)
            totals.add(result.verdict)
            results.append(result)
            reporter.caseFinished(index + 1, result)
        }
        reporter.runFinished(results, totals: totals)
        return totals
    }
}
