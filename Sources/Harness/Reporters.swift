/// Receives a run's events in order.
public protocol SuiteReporter: AnyObject {
    /// Before any case runs.
    func runStarted(backend: BackendInfo, plan: RunPlan)
    /// Right before case `number` (1-based) starts (or, when cases run at once, right before its output is replayed).
    func caseStarted(_ number: Int, _ testCase: TestCase)
    /// Right after it ended.
    func caseFinished(_ number: Int, _ result: CaseResult)
    /// After the last case.
    func runFinished(_ results: [CaseResult], totals: RunTotals)
    /// Whether case processes must have their output captured into `CaseResult.output`
    /// (otherwise they write straight to the harness's stdout and stderr).
    var capturesOutput: Bool { get }
    /// When cases run concurrently and the reporter does not capture: what case `number`
    /// wrote (`result.capturedOutput`), between `caseStarted` and `caseFinished`, to be
    /// passed on where the case would have written it.
    func caseOutput(_ number: Int, _ result: CaseResult)
    /// How to capture case output for `caseOutput`.
    var replayCapture: OutputCapture { get }
    /// Where the report went; its `failure` fails the run.
    var sink: ReportSink { get }
}

extension SuiteReporter {
    public func caseOutput(_ number: Int, _ result: CaseResult) {}
    public var replayCapture: OutputCapture { .separate }
}

/// What a reporter adds to a failed case: a note per case name, e.g. that the
/// reference kernel fails it too. The suite knows these; the harness only prints them.
public typealias CaseNotes = [String: String]

/// kselftest TAP, as hmm-tests prints it: `TAP version 13` first (strict
/// parsers demand it), then one comment naming the backend.
public final class TAPReporter: SuiteReporter {
    public let sink: ReportSink
    /// Print "TAP version 13" (the kernel omits it when KSFT_TAP_LEVEL is set).
    let printsVersion: Bool
    let notes: CaseNotes

    public init(sink: ReportSink = StandardSink(), printsVersion: Bool = true, notes: CaseNotes = [:]) {
        self.sink = sink
        self.printsVersion = printsVersion
        self.notes = notes
    }

    public var capturesOutput: Bool { false }

    /// One pipe when stdout and stderr end in the same place (a terminal, 2>&1),
    /// so the order between a case's two streams is exact; else one pipe per stream,
    /// so each byte goes where it would have gone.
    public var replayCapture: OutputCapture { sink.streamsShareDestination ? .merged : .separate }

    public func caseOutput(_ number: Int, _ result: CaseResult) {
        for chunk in result.capturedOutput { sink.write(chunk.stream, chunk.bytes) }
    }

    public func runStarted(backend: BackendInfo, plan: RunPlan) {
        if printsVersion { sink.out(TAP.header) }
        sink.out(backend.tapComment)
        sink.out(TAP.plan(plan.testCount))
        sink.out(TAP.starting(tests: plan.testCount, cases: plan.caseCount))
    }

    public func caseStarted(_ number: Int, _ testCase: TestCase) {
        sink.out(TAP.run(testCase.name.description))
    }

    public func caseFinished(_ number: Int, _ result: CaseResult) {
        for line in result.diagnostics { sink.err(line) }
        // A failure the reference kernel shares is still a failure; say so, so nobody chases the simulator.
        if case .fail = result.verdict, let note = notes[result.name] {
            sink.out("# \(result.name): \(note)")
        }
        sink.out(TAP.result(result.verdict, result.name))
        sink.out(TAP.testLine(number, result.name, result.verdict))
    }

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out(TAP.summary(totals))
        for line in TAP.counts(totals) { sink.out(line) }
    }
}
