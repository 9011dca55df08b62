import Harness
import MachineInterface

/// What an exploration prints: the distinct outcomes (each with its count and a
/// schedule that reproduces it) and the checkers' reports, as text or JSON.
public struct ExploreReport: Sendable {
    public let scenario: ConcurrentScenario
    /// The backend's description ("simulated Linux 7.3 test_hmm, ...").
    public let backend: String
    public let tally: Tally
    public let seconds: Double
    /// The preemption bound of the bounded search (nil: none ran).
    public let preemptionBound: Int?

    public init(scenario: ConcurrentScenario, backend: String, tally: Tally, seconds: Double, preemptionBound: Int?) {
        self.scenario = scenario
        self.backend = backend
        self.tally = tally
        self.seconds = seconds
        self.preemptionBound = preemptionBound
    }

    private var rate: Double { seconds > 0 ? Double(tally.schedules) / seconds : 0 }

    private var searchLine: String {
        var parts: [String] = []
        if tally.randomSchedules > 0 { parts.append("\(tally.randomSchedules) random") }
        if let preemptionBound, tally.boundedSchedules > 0 {
            parts.append("\(tally.boundedSchedules) with at most \(preemptionBound) preemption(s)"
                         + (tally.boundedIncomplete ? " (cut at the limit)" : " (all of them)"))
        }
        if parts.isEmpty { parts.append("\(tally.schedules)") }
        return parts.joined(separator: " + ") + " schedule(s)"
    }

    public var text: String {
        var lines = ["explore \(scenario.name): \(scenario.summary)",
                     "backend: \(backend)",
                     "\(searchLine) in \(JSON.seconds(seconds)) s (\(Int(rate.rounded())) schedules/s)",
                     "\(tally.outcomes.count) distinct outcome(s):"]
        for (index, outcome) in tally.outcomes.enumerated() {
            let seen = tally.outcomeSeen[outcome]!
            lines.append("  #\(index + 1): \(seen.count) schedule(s), first: \(seen.first)")
            lines += outcome.map { "      " + $0 }
        }
        if tally.reports.isEmpty {
            lines.append("checker reports: none")
        } else {
            lines.append("checker reports: \(tally.reports.count) distinct")
            for report in tally.reports {
                let seen = tally.reportSeen[report]!
                lines.append("  \(report.kind) in \(seen.count) schedule(s), first: \(seen.first)")
                lines += report.text.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }
            }
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        let outcomes = tally.outcomes.map { outcome -> String in
            let seen = tally.outcomeSeen[outcome]!
            return "{\"count\": \(seen.count), \"first\": \(JSON.quote(seen.first)), \"lines\": ["
                + outcome.map(JSON.quote).joined(separator: ", ") + "]}"
        }
        let reports = tally.reports.map { report -> String in
            let seen = tally.reportSeen[report]!
            return "{\"kind\": \(JSON.quote(report.kind)), \"count\": \(seen.count), \"first\": \(JSON.quote(seen.first)), "
                + "\"text\": \(JSON.quote(report.text))}"
        }
        return """
            {"scenario": \(JSON.quote(scenario.name)), "backend": \(JSON.quote(backend)), \
            "schedules": \(tally.schedules), "random": \(tally.randomSchedules), "bounded": \(tally.boundedSchedules), \
            "preemption_bound": \(preemptionBound.map(String.init) ?? "null"), \
            "bounded_complete": \(!tally.boundedIncomplete), "seconds": \(JSON.seconds(seconds)), \
            "outcomes": [\(outcomes.joined(separator: ", "))], "reports": [\(reports.joined(separator: ", "))]}
            """
    }
}
