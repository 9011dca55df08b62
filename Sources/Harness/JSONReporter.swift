/// One JSON document for the whole run, written at the end.
public final class JSONReporter: SuiteReporter {
    public let sink: ReportSink
    let notes: CaseNotes
    private var backend = BackendInfo(name: "", detail: "", abi: "")

    public init(sink: ReportSink = StandardSink(), notes: CaseNotes = [:]) {
        self.sink = sink
        self.notes = notes
    }

    public var capturesOutput: Bool { true }

    public func runStarted(backend: BackendInfo, plan: RunPlan) { self.backend = backend }
    public func caseStarted(_ number: Int, _ testCase: TestCase) {}
    public func caseFinished(_ number: Int, _ result: CaseResult) {}

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out(Self.document(backend: backend, results: results, totals: totals, notes: notes))
    }

    /// The document: backend, cases (name, verdict, reason, note, duration, output), totals.
    public static func document(backend: BackendInfo, results: [CaseResult], totals: RunTotals,
                                notes: CaseNotes = [:]) -> String {
        var json = "{\n"
        json += "  \"backend\": \(backendObject(backend)),\n"
        json += "  \"cases\": ["
        for (index, result) in results.enumerated() {
            json += index == 0 ? "\n    " : ",\n    "
            json += caseObject(index + 1, result, notes: notes)
        }
        json += results.isEmpty ? "],\n" : "\n  ],\n"
        json += "  \"totals\": \(totalsObject(totals)),\n"
        json += "  \"passed\": \(totals.succeeded)\n"
        json += "}"
        return json
    }

    static func backendObject(_ backend: BackendInfo) -> String {
        let q = JSON.quote
        return "{\"name\": \(q(backend.name)), \"detail\": \(q(backend.detail)), \"abi\": \(q(backend.abi))}"
    }

    /// One case: number, name, verdict, reason, note (for a failure the suite knows more about), duration, output.
    static func caseObject(_ number: Int, _ result: CaseResult, notes: CaseNotes) -> String {
        let q = JSON.quote
        let note = result.verdict == .fail ? notes[result.name] : nil
        return "{\"number\": \(number), \"name\": \(q(result.name)), \"verdict\": \(q(result.verdict.name)), "
            + "\"reason\": \(result.reason.map(q) ?? "null"), \"note\": \(note.map(q) ?? "null"), "
            + "\"duration\": \(JSON.seconds(result.duration)), \"output\": \(q(result.output))}"
    }

    static func totalsObject(_ totals: RunTotals) -> String {
        "{\"pass\": \(totals.pass), \"fail\": \(totals.fail), \"xfail\": \(totals.xfail), "
            + "\"xpass\": \(totals.xpass), \"skip\": \(totals.skip), \"error\": \(totals.error)}"
    }
}

/// JSON Lines: one object per line, written as the run goes, so a run that
/// dies (a kernel panic in the lab's guest) keeps every case that finished:
///
///     {"backend": {...}, "plan": ["fixture.variant.test", ...]}
///     {"case": {"number": 1, "name": ..., "verdict": ..., ...}}
///     {"totals": {...}, "passed": true}
public final class JSONLinesReporter: SuiteReporter {
    public let sink: ReportSink
    let notes: CaseNotes

    public init(sink: ReportSink = StandardSink(), notes: CaseNotes = [:]) {
        self.sink = sink
        self.notes = notes
    }

    public var capturesOutput: Bool { true }

    public func runStarted(backend: BackendInfo, plan: RunPlan) {
        let names = plan.cases.map { JSON.quote($0.name.description) }.joined(separator: ", ")
        sink.out("{\"backend\": \(JSONReporter.backendObject(backend)), \"plan\": [\(names)]}")
    }

    public func caseStarted(_ number: Int, _ testCase: TestCase) {}

    public func caseFinished(_ number: Int, _ result: CaseResult) {
        sink.out("{\"case\": \(JSONReporter.caseObject(number, result, notes: notes))}")
    }

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out("{\"totals\": \(JSONReporter.totalsObject(totals)), \"passed\": \(totals.succeeded)}")
    }
}

/// JSON text for the reports dmirror writes (a writer, not a parser).
public enum JSON {
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
    public static func seconds(_ value: Double) -> String {
        let micros = Int((max(value, 0) * 1_000_000).rounded())
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }
}
