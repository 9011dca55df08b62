import ABI
import Harness
import MachineInterface
import Syscalls
import SystemPackage

/// Runs a scenario under many schedules, each in a process of its own, and
/// gathers the distinct outcomes and the checkers' reports: random schedules
/// (N seeds) and every schedule with at most K preemptions (stateless
/// bounded search, as CHESS and loom do: a schedule is the list of choices at
/// the points where more than one task could run; each run's choices are
/// extended by every alternative that stays within the bound).
public struct Explorer: Sendable {
    /// Builds a fresh simulated machine that schedules by the policy and calls the
    /// handler (which must not return) when every task waits or a livelock is found.
    public typealias MachineFactory = @Sendable (SchedulePolicy, _ onStuck: @escaping @Sendable (String) -> Never) -> any Machine

    public let scenario: ConcurrentScenario
    let makeMachine: MachineFactory
    /// A schedule that runs longer than this is killed and counted as hung.
    public var timeoutNanoseconds: UInt64 = 30_000_000_000

    public init(_ scenario: ConcurrentScenario, makeMachine: @escaping MachineFactory) {
        self.scenario = scenario
        self.makeMachine = makeMachine
    }

    /// What one schedule gave.
    public struct Run: Sendable {
        /// How to get this run again (`--schedule ...`, `--seed ... --permille ...`, a repetition).
        public let label: String
        public let outcome: [String]
        public let reports: [CheckerReport]
        public let decisions: [ScheduleDecision]
    }

    /// The preemption probabilities random schedules cycle through (per mille, at each
    /// scheduling point): rare switches find races at one point, frequent ones mix tasks finely.
    public static let randomPermilles = [10, 50, 200, 500]

    /// The policy of the i-th random schedule from `seed`.
    public static func randomPolicy(seed: UInt64, index: Int) -> SchedulePolicy {
        .random(seed: seed &+ UInt64(index), preemptPermille: randomPermilles[index % randomPermilles.count])
    }

    /// Runs one schedule in a child process.
    public func run(_ policy: SchedulePolicy) -> Run {
        let scenario = self.scenario
        let makeMachine = self.makeMachine
        return Explorer.isolated(label: ScheduleText.describe(policy), timeoutNanoseconds: timeoutNanoseconds) { out in
            Explorer.child(scenario, { makeMachine(policy, $0) }, jitterSeed: nil, out)
        }
    }

    /// One repetition of `scenario` on a machine that schedules itself (the real
    /// kernel), with seeded jitter before each operation.
    public static func repetition(_ scenario: ConcurrentScenario, _ index: Int, timeoutNanoseconds: UInt64,
                                  makeMachine: @escaping @Sendable () -> any Machine) -> Run {
        isolated(label: "repetition \(index)", timeoutNanoseconds: timeoutNanoseconds) { out in
            Explorer.child(scenario, { _ in makeMachine() }, jitterSeed: UInt64(index) &* 0x9E37_79B9_7F4A_7C15, out)
        }
    }

    private static func isolated(label: String, timeoutNanoseconds: UInt64, _ body: (FileDescriptor) -> Never) -> Run {
        switch Result(catching: { () throws(Errno) in try IsolatedRun.run(timeoutNanoseconds: timeoutNanoseconds, body) }) {
        case .failure(let errno):
            return Run(label: label, outcome: ["explore: cannot fork: \(errno.name)"], reports: [], decisions: [])
        case .success(let answer):
            var decoded = ChildChannel.decode(answer.output)
            if answer.timedOut {
                decoded.outcome.append("explore: the schedule ran past its timeout and was killed")
            } else if !decoded.complete {
                decoded.outcome.append("explore: the schedule's process ended without an answer (\(answer.status))")
            }
            return Run(label: label, outcome: decoded.outcome, reports: decoded.reports, decisions: decoded.decisions)
        }
    }

    /// The child: run the scenario, send the outcome, the reports and the decisions.
    private static func child(_ scenario: ConcurrentScenario,
                              _ makeMachine: (_ onStuck: @escaping @Sendable (String) -> Never) -> any Machine,
                              jitterSeed: UInt64?, _ out: FileDescriptor) -> Never {
        let box = RunBox()
        let machine = makeMachine { report in
            // Every task waits, one spins, or the kernel oopsed: what happened so far is the outcome.
            let lines = (box.run?.outcome ?? []) + ["ended: " + (report.split(separator: "\n").first.map(String.init) ?? report)]
            Explorer.send(lines, box.machine, stuck: report, out)
        }
        box.machine = machine
        let run = ScenarioRun(scenario, on: machine, jitterSeed: jitterSeed)
        box.run = run
        run.execute()
        send(run.outcome, machine, stuck: nil, out)
    }

    private final class RunBox: @unchecked Sendable {
        var run: ScenarioRun?
        var machine: (any Machine)?
    }

    private static func send(_ outcome: [String], _ machine: (any Machine)?, stuck: String?, _ out: FileDescriptor) -> Never {
        let model = machine as? any MachineIntrospection
        var reports = model?.checkerReports() ?? []
        if let stuck, !reports.contains(where: { $0.text == stuck }) { reports.append(CheckerReport(kind: "deadlock", text: stuck)) }
        // The state the run left: stale mappings, unended invalidations (skipped when stuck:
        // the tasks that hold the locks the introspection would take never run again).
        if stuck == nil {
            reports += model?.invariantReports() ?? []
        }
        let text = ChildChannel.encode(outcome: outcome, reports: reports, decisions: model?.scheduleDecisions() ?? [])
        try? Sys.writeAll(out, text)
        Sys.exit(0)
    }
}

/// The child's answer on its pipe: one record per line, tab-separated, with
/// newlines and tabs in text escaped.
enum ChildChannel {
    static func encode(outcome: [String], reports: [CheckerReport], decisions: [ScheduleDecision]) -> String {
        var lines = outcome.map { "O\t" + escape($0) }
        lines += reports.map { "R\t" + escape($0.kind) + "\t" + escape($0.text) }
        lines += decisions.map { "D\t\($0.options)\t\($0.chosen)\t\($0.currentRunnable ? 1 : 0)" }
        lines.append("E")
        return lines.joined(separator: "\n") + "\n"
    }

    static func decode(_ bytes: [UInt8]) -> (outcome: [String], reports: [CheckerReport], decisions: [ScheduleDecision], complete: Bool) {
        var outcome: [String] = []
        var reports: [CheckerReport] = []
        var decisions: [ScheduleDecision] = []
        var complete = false
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch fields.first {
            case "O" where fields.count == 2: outcome.append(unescape(fields[1]))
            case "R" where fields.count == 3: reports.append(CheckerReport(kind: unescape(fields[1]), text: unescape(fields[2])))
            case "D" where fields.count == 4:
                if let options = Int(fields[1]), let chosen = Int(fields[2]) {
                    decisions.append(ScheduleDecision(options: options, chosen: chosen, currentRunnable: fields[3] == "1"))
                }
            case "E": complete = true
            default: break
            }
        }
        return (outcome, reports, decisions, complete)
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out
    }

    static func unescape(_ text: String) -> String {
        var out = ""
        var escaping = false
        for c in text {
            if escaping {
                out.append(c == "n" ? "\n" : c == "t" ? "\t" : c)
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
