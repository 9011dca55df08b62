/// JUnit XML (the schema GitLab and Jenkins read): one `<testsuite>` per
/// fixture.variant, one `<testcase>` per case, written at the end.
public final class JUnitReporter: SuiteReporter {
    public let sink: ReportSink
    let notes: CaseNotes
    private var backend = BackendInfo(name: "", detail: "", abi: "")
    private var cases: [TestCase] = []

    public init(sink: ReportSink = StandardSink(), notes: CaseNotes = [:]) {
        self.sink = sink
        self.notes = notes
    }

    public var capturesOutput: Bool { true }

    public func runStarted(backend: BackendInfo, plan: RunPlan) {
        self.backend = backend
        cases = plan.cases
    }

    public func caseStarted(_ number: Int, _ testCase: TestCase) {}
    public func caseFinished(_ number: Int, _ result: CaseResult) {}

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        sink.out(Self.document(backend: backend, cases: cases, results: results, notes: notes))
    }

    public static func document(backend: BackendInfo, cases: [TestCase], results: [CaseResult], notes: CaseNotes) -> String {
        // Group in run order by fixture.variant.
        var groups: [(name: String, members: [(TestCase, CaseResult)])] = []
        for (testCase, result) in zip(cases, results) {
            let group = "\(testCase.name.fixture).\(testCase.name.variant)"
            if groups.last?.name == group {
                groups[groups.count - 1].members.append((testCase, result))
            } else {
                groups.append((group, [(testCase, result)]))
            }
        }
        func counts(_ members: [CaseResult]) -> String {
            let failures = members.filter { $0.verdict == .fail }.count
            let skipped = members.filter { if case .skip = $0.verdict { true } else { false } }.count
            let time = members.reduce(0) { $0 + $1.duration }
            return "tests=\"\(members.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\"\(JSON.seconds(time))\""
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"dmirror\" \(counts(results))>\n"
        for group in groups {
            xml += "  <testsuite name=\(attribute(group.name)) \(counts(group.members.map(\.1)))>\n"
            xml += "    <properties><property name=\"backend\" value=\(attribute(backend.name + ": " + backend.detail))/></properties>\n"
            for (testCase, result) in group.members {
                xml += "    <testcase classname=\(attribute(group.name)) name=\(attribute(testCase.name.test)) time=\"\(JSON.seconds(result.duration))\">\n"
                switch result.verdict {
                case .pass: break
                case .skip(let reason):
                    xml += "      <skipped message=\(attribute(reason))/>\n"
                case .fail:
                    var message = result.failureReason ?? "failed"
                    if let note = notes[result.name] { message += " (\(note))" }
                    xml += "      <failure message=\(attribute(message))/>\n"
                }
                if !result.output.isEmpty {
                    xml += "      <system-out>\(text(result.output))</system-out>\n"
                }
                xml += "    </testcase>\n"
            }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>"
        return xml
    }

    /// An attribute value in double quotes, XML-escaped.
    static func attribute(_ value: String) -> String { "\"" + escape(value, quote: true) + "\"" }

    /// Element text, XML-escaped.
    static func text(_ value: String) -> String { escape(value, quote: false) }

    /// XML 1.0 escaping; characters XML cannot carry at all (most C0 controls) become U+FFFD.
    static func escape(_ value: String, quote: Bool) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where quote: out += "&quot;"
            case "\n" where quote: out += "&#10;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF:
                out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
