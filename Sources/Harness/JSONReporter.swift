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
        let q = JSON.quote
        var json = "{\n"
        json += "  \"backend\": {\"name\": \(q(backend.name)), \"detail\": \(q(backend.detail)), \"abi\": \(q(backend.abi))},\n"
        json += "  \"cases\": ["
        for (index, result) in results.enumerated() {
            let note = result.verdict == .fail ? notes[result.name] : nil
            json += index == 0 ? "\n" : ",\n"
            json += "    {\"number\": \(index + 1), \"name\": \(q(result.name)), \"verdict\": \(q(result.verdict.name)), "
            json += "\"reason\": \(result.reason.map(q) ?? "null"), "
            json += "\"note\": \(note.map(q) ?? "null"), "
            json += "\"duration\": \(JSON.seconds(result.duration)), "
            json += "\"output\": \(q(result.output))}"
        }
        json += results.isEmpty ? "],\n" : "\n  ],\n"
        json += "  \"totals\": {\"pass\": \(totals.pass), \"fail\": \(totals.fail), \"xfail\": \(totals.xfail), "
        json += "\"xpass\": \(totals.xpass), \"skip\": \(totals.skip), \"error\": \(totals.error)},\n"
        json += "  \"passed\": \(totals.succeeded)\n"
        json += "}"
        return json
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
