/// How a case process tells the harness how it ended, besides its exit status:
/// one line on a dedicated pipe, `<kind>\t<text>`, kind being pass, fail,
/// assert or skip. The exit status (0, 1, 4) stays the authority; the line
/// adds the SKIP reason and whether an ASSERT stopped the case.
public enum VerdictChannel {
    /// The line for `outcome` (newline-terminated).
    public static func encode(_ outcome: CaseOutcome) -> String {
        func clean(_ text: String) -> String {
            String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
        }
        switch outcome {
        case .passed: return "pass\t\n"
        case .expectationFailed: return "fail\t\n"
        case .assertionFailed(let message): return "assert\t\(clean(message))\n"
        case .skipped(let reason): return "skip\t\(clean(reason))\n"
        }
    }

    /// The outcome a channel's text reports (its last complete line), or nil.
    public static func decode(_ text: String) -> CaseOutcome? {
        guard let line = text.split(separator: "\n").last else { return nil }
        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
        let payload = parts.count > 1 ? String(parts[1]) : ""
        switch parts[0] {
        case "pass": return .passed
        case "fail": return .expectationFailed
        case "assert": return .assertionFailed(payload)
        case "skip": return .skipped(payload)
        default: return nil
        }
    }
}
