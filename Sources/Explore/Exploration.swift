import ABI
import MachineInterface

/// The distinct outcomes and reports of many schedules of one scenario, each
/// with how often it came up and the first schedule that gave it (which
/// reproduces it).
public struct Tally: Sendable {
    public struct Seen: Sendable {
        public var count: Int
        /// How to get it again: the schedule's command-line form, or the repetition on the kernel.
        public let first: String
    }

    /// Each distinct outcome (its lines), in the order first seen.
    public private(set) var outcomes: [[String]] = []
    public private(set) var outcomeSeen: [[String]: Seen] = [:]
    /// Each distinct report (kind and text), in the order first seen.
    public private(set) var reports: [CheckerReport] = []
    public private(set) var reportSeen: [CheckerReport: Seen] = [:]
    public private(set) var schedules = 0
    public var randomSchedules = 0
    public var boundedSchedules = 0
    /// The bounded search ran out of budget before it covered every schedule.
    public var boundedIncomplete = false

    public init() {}

    public mutating func add(_ run: Explorer.Run) {
        schedules += 1
        if outcomeSeen[run.outcome] == nil {
            outcomes.append(run.outcome)
            outcomeSeen[run.outcome] = Seen(count: 1, first: run.label)
        } else {
            outcomeSeen[run.outcome]!.count += 1
        }
        for report in Set(run.reports) {
            if reportSeen[report] == nil {
                reports.append(report)
                reportSeen[report] = Seen(count: 1, first: run.label)
            } else {
                reportSeen[report]!.count += 1
            }
        }
    }
}

extension Explorer {
    /// `count` random schedules from `seed` (see `randomPolicy`), or fewer if `stop` says so.
    public func random(count: Int, seed: UInt64, into tally: inout Tally, progress: (Int) -> Void = { _ in },
                       stop: (Tally) -> Bool = { _ in false }) {
        for index in 0..<count {
            if stop(tally) { return }
            tally.add(run(Explorer.randomPolicy(seed: seed, index: index)))
            tally.randomSchedules += 1
            progress(tally.schedules)
        }
    }

    /// Every schedule with at most `bound` preemptions (a switch away from a task
    /// that could have gone on; a switch where the running task blocks is free), up to
    /// `limit` schedules. Depth first from the schedule that never preempts.
    public func bounded(preemptions bound: Int, limit: Int, into tally: inout Tally, progress: (Int) -> Void = { _ in },
                        stop: (Tally) -> Bool = { _ in false }) {
        var pending: [[Int]] = [[]]
        var ran = 0
        while let prefix = pending.popLast() {
            if stop(tally) { return }
            guard ran < limit else {
                tally.boundedIncomplete = true
                return
            }
            let result = run(.replay(prefix))
            ran += 1
            tally.add(result)
            tally.boundedSchedules += 1
            progress(tally.schedules)
            let decisions = result.decisions
            guard decisions.count >= prefix.count else { continue }
            var used = 0
            for i in 0..<prefix.count where decisions[i].isPreemption { used += 1 }
            // Past the prefix every choice was the default (0): try each alternative there.
            for i in stride(from: decisions.count - 1, through: prefix.count, by: -1) {
                let decision = decisions[i]
                guard decision.options > 1 else { continue }
                let cost = decision.currentRunnable ? 1 : 0
                guard used + cost <= bound else { continue }
                let base = decisions[0..<i].map(\.chosen)
                for alternative in stride(from: decision.options - 1, through: 1, by: -1) {
                    pending.append(base + [alternative])
                }
            }
        }
    }
}

extension ConcurrentScenario.Expectation {
    /// Whether a tally meets the expectation, and if not, why (one line).
    public func check(_ tally: Tally) -> String? {
        let matches = { (report: CheckerReport, text: String) in report.text.contains(text) || report.kind.contains(text) }
        if let finding, !tally.reports.contains(where: { matches($0, finding) }) {
            return "no schedule gave a report containing \"\(finding)\""
        }
        // A bug variant shows through several checkers at once (a commit without read_retry
        // also leaves a stale mapping): its finding is enough. Elsewhere, a report that is
        // neither the finding nor tolerated fails.
        if stopsAtFinding { return nil }
        let allowed = (finding.map { [$0] } ?? []) + tolerating
        guard let report = tally.reports.first(where: { r in !allowed.contains { matches(r, $0) } }) else { return nil }
        let seen = tally.reportSeen[report]!
        return "\(seen.count) schedule(s) reported \(report.kind): \(report.headline) (first: \(seen.first))"
    }

    /// How the listing and --check say it: `finds "X"`, `reports nothing`, plus what it tolerates.
    public var summary: String {
        let tolerated = tolerating.map { "\"\($0)\"" }.joined(separator: ", ")
        guard let finding else { return tolerating.isEmpty ? "reports nothing" : "reports nothing but \(tolerated)" }
        return tolerating.isEmpty ? "finds \"\(finding)\"" : "finds \"\(finding)\" (tolerates \(tolerated))"
    }

    /// A bug variant's finding: the search may stop at the first schedule that shows it.
    /// The stock model's are searched in full, so no other report hides behind them.
    public var stopsAtFinding: Bool { finding != nil && !variants.isEmpty }
}

/// How schedules are written on the command line and in reports.
public enum ScheduleText {
    public static func describe(_ policy: SchedulePolicy) -> String {
        switch policy {
        case .runToBlock: "--schedule ''"
        case .random(let seed, let permille): "--seed \(seed) --permille \(permille)"
        case .replay(let choices): "--schedule '" + choices.map(String.init).joined(separator: ",") + "'"
        }
    }

    /// A `--schedule` value: comma-separated choice indices (empty: no preemption).
    public static func parse(_ text: String) -> [Int]? {
        if text.isEmpty { return [] }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        return parts.map { $0! }
    }
}
