/// Receives a run's events in order.
public protocol SuiteReporter: AnyObject {
    /// Before any case runs.
    func runStarted(backend: BackendInfo, plan: RunPlan)
    /// Right before case `number` (1-based) starts.
    func caseStarted(_ number: Int, _ suiteCase: SuiteCase)
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
}

extension SuiteReporter {
    public func caseOutput(_ number: Int, _ result: CaseResult) {}
    public var replayCapture: OutputCapture { .separate }
}

/// kselftest TAP, as hmm-tests prints it, after one comment naming the backend.
public final class TAPReporter: SuiteReporter {
    let sink: ReportSink
    /// Print "TAP version 13" (the kernel omits it when KSFT_TAP_LEVEL is set).
    let printsVersion: Bool

    public init(sink: ReportSink = StandardSink(), printsVersion: Bool = true) {
        self.sink = sink
        self.printsVersion = printsVersion
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
        sink.out(backend.tapComment)
        if printsVersion { sink.out(TAP.header) }
        sink.out(TAP.plan(plan.testCount))
        sink.out(TAP.starting(tests: plan.testCount, cases: plan.caseCount))
    }

    public func caseStarted(_ number: Int, _ suiteCase: SuiteCase) {
        sink.out(TAP.run(suiteCase.name))
    }

    public func caseFinished(_ number: Int, _ result: CaseResult) {
        for line in result.diagnostics { sink.err(line) }
        // A failure the reference kernel shares is still a failure; say so, so nobody chases the simulator.
        if case .fail = result.verdict, let finding = HMMSuite.kernelFinding(for: result.name) {
            sink.out("# \(result.name): Linux 7.3 fails this case too (\(finding.assertion)): a kernel finding, see README.md, The lab")
        }
        sink.out(TAP.result(result.verdict, result.name))
        sink.out(TAP.testLine(number, result.name, result.verdict))
    }

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out(TAP.summary(totals))
        for line in TAP.counts(totals) { sink.out(line) }
    }
}

/// One JSON document for the whole run, written at the end.
public final class JSONReporter: SuiteReporter {
    let sink: ReportSink
    private var backend = BackendInfo(name: "", detail: "", abi: "")

    public init(sink: ReportSink = StandardSink()) { self.sink = sink }

    public var capturesOutput: Bool { true }

    public func runStarted(backend: BackendInfo, plan: RunPlan) { self.backend = backend }
    public func caseStarted(_ number: Int, _ suiteCase: SuiteCase) {}
    public func caseFinished(_ number: Int, _ result: CaseResult) {}

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out(Self.document(backend: backend, results: results, totals: totals))
    }

    /// The document: backend, cases (name, verdict, reason, duration, output), totals.
    public static func document(backend: BackendInfo, results: [CaseResult], totals: RunTotals) -> String {
        var json = "{\n"
        json += "  \"backend\": {\"name\": \(quote(backend.name)), \"detail\": \(quote(backend.detail)), \"abi\": \(quote(backend.abi))},\n"
        json += "  \"cases\": ["
        for (index, result) in results.enumerated() {
            json += index == 0 ? "\n" : ",\n"
            json += "    {\"number\": \(index + 1), \"name\": \(quote(result.name)), \"verdict\": \(quote(result.verdict.name)), "
            json += "\"reason\": \(result.reason.map(quote) ?? "null"), "
            json += "\"duration\": \(seconds(result.duration)), "
            json += "\"output\": \(quote(result.output))}"
        }
        json += results.isEmpty ? "],\n" : "\n  ],\n"
        json += "  \"totals\": {\"pass\": \(totals.pass), \"fail\": \(totals.fail), \"xfail\": \(totals.xfail), "
        json += "\"xpass\": \(totals.xpass), \"skip\": \(totals.skip), \"error\": \(totals.error)},\n"
        json += "  \"passed\": \(totals.succeeded)\n"
        json += "}"
        return json
    }

    /// A JSON string literal (RFC 8259 escaping).
    public static func quote(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Seconds with microsecond precision, e.g. 0.012345.
    static func seconds(_ value: Double) -> String {
        let micros = Int((max(value, 0) * 1_000_000).rounded())
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }
}
