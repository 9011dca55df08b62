import ABI
import ArgumentParser
import Explore
import Harness
import Linux
import MachineInterface
import Simulator
import Syscalls

/// `dmirror explore SCENARIO`: a concurrent scenario under many schedules.
struct ExploreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explore",
        abstract: "Run a concurrent scenario under many schedules and print its distinct outcomes and the checkers' reports.",
        discussion: """
            On the simulator (the default) each schedule runs in a process of its own: --random seeded \
            random schedules, then every schedule with at most --preemptions preemptions (up to --limit). \
            Each distinct outcome and each checker report is printed with the first schedule that gave it; \
            --schedule or --seed with --permille runs that one schedule again. --backend kernel runs the \
            scenario --repeat times on the real driver instead (the lab compares the two). --check runs \
            every scenario under every variant it lists and holds each to its expectation. \
            Exit status: 0 if no checker reported anything (--check: every expectation met), 1 otherwise, \
            4 if the kernel backend is unavailable.
            """
    )

    @Argument(help: "The scenario (dmirror explore --list names them).")
    var scenario: String?

    @Flag(help: "List the scenarios, the variants each is for and what exploring must find.")
    var list = false

    @Flag(help: "Run every scenario (or the one named) under each expectation's variants and check it (the simulator).")
    var check = false

    @Option(help: "sim (schedules chosen by the explorer) or kernel (the real driver, --repeat times).")
    var backend: Backend = .simulator

    @Option(help: ArgumentHelp("How many random schedules.", valueName: "N"))
    var random: Int = 1000

    @Option(help: ArgumentHelp("The first random schedule's seed (the i-th uses seed + i).", valueName: "S"))
    var seed: UInt64 = 1

    @Option(help: ArgumentHelp("With --seed: run just that random schedule, preempting with this probability "
                               + "(per mille) at each point.", valueName: "P"))
    var permille: Int?

    @Option(help: ArgumentHelp("Also run every schedule with at most K preemptions.", valueName: "K"))
    var preemptions: Int = 2

    @Option(help: ArgumentHelp("At most this many bounded schedules.", valueName: "M"))
    var limit: Int = 20_000

    @Option(help: ArgumentHelp("Run just this schedule: the choice at each decision, comma-separated.", valueName: "LIST"))
    var schedule: String?

    @Option(help: ArgumentHelp("How many times the kernel backend runs the scenario.", valueName: "N"))
    var `repeat`: Int = 200

    @Option(help: "text, or json (one document, for the lab).")
    var format: ReportFormat = .text

    @Flag(name: .customLong("kmsg-markers"),
          help: "With --backend kernel: BEGIN/END lines around the repetitions in /dev/kmsg (root), for splat attribution.")
    var kmsgMarkers = false

    @OptionGroup(title: "Simulator") var simulator: SimulatorOptions

    func validate() throws {
        if random < 0 || preemptions < 0 || limit < 0 || `repeat` < 1 {
            throw ValidationError("--random, --preemptions and --limit must be 0 or more, --repeat 1 or more")
        }
        if let permille, !(0...1000).contains(permille) { throw ValidationError("--permille is 0 to 1000 (got \(permille))") }
        if let schedule, ScheduleText.parse(schedule) == nil {
            throw ValidationError("--schedule \(schedule): expected comma-separated choice numbers, e.g. 0,1,0")
        }
        if check && (backend == .kernel || !simulator.variants.isEmpty) {
            throw ValidationError("--check runs the simulator under the variants each expectation names")
        }
        if backend == .kernel && simulator.given {
            throw ValidationError("--sim-* options configure the simulator; the kernel backend is what it is")
        }
        if !list && !check && scenario == nil {
            throw ValidationError("name a scenario, or --list, or --check")
        }
    }

    func run() throws {
        if list { return try write(listing()) }
        if check { return try runCheck() }
        guard let name = scenario, let chosen = Catalogue.named(name) else {
            let names = Catalogue.all.map(\.name).joined(separator: ", ")
            throw refuse("explore: no scenario \"\(scenario ?? "")\" (scenarios: \(names))", exit: KSFTExit.fail)
        }
        CaseLauncher.forwardInterrupts()
        let started = Sys.monotonicNanoseconds()
        var tally = Tally()
        let label: String
        switch backend {
        case .kernel:
            guard chosen.runsOnKernel else {
                throw refuse("explore: \(chosen.name) is simulator-only (\(chosen.summary))", exit: KSFTExit.skip)
            }
            let resolved = try BackendResolver.resolve(.kernel, abi: nil)
            let abi = resolved.abi
            label = resolved.info.detail
            let markers: KmsgMarkers?
            do {
                markers = kmsgMarkers ? try KmsgMarkers() : nil
            } catch {
                throw refuse("--kmsg-markers: /dev/kmsg: \(error.named) (it needs root)", exit: KSFTExit.fail)
            }
            markers?.begin("explore.\(chosen.name)")
            for index in 0..<`repeat` {
                tally.add(Explorer.repetition(chosen, index, timeoutNanoseconds: 30_000_000_000) { LinuxMachine(abi: abi) })
                progress(tally.schedules)
            }
            markers?.end("explore.\(chosen.name)", rc: KSFTExit.pass)
        case .simulator:
            let explorer = Explorer(chosen, makeMachine: machineFactory(simulator.simulated))
            label = simulatedLabel(simulator.simulated)
            if let schedule, let choices = ScheduleText.parse(schedule) {
                tally.add(explorer.run(.replay(choices)))
            } else if let permille {
                tally.add(explorer.run(.random(seed: seed, preemptPermille: permille)))
            } else {
                explorer.random(count: random, seed: seed, into: &tally, progress: progress)
                explorer.bounded(preemptions: preemptions, limit: limit, into: &tally, progress: progress)
            }
        }
        endProgress()
        let seconds = Double(Sys.monotonicNanoseconds() - started) / 1e9
        let report = ExploreReport(scenario: chosen, backend: label, tally: tally, seconds: seconds,
                                   preemptionBound: backend == .simulator && schedule == nil && permille == nil ? preemptions : nil)
        try write(format == .json ? report.json : report.text)
        if !tally.reports.isEmpty { throw ExitCode(KSFTExit.fail) }
    }

    /// Every scenario under each of its expectations.
    private func runCheck() throws {
        CaseLauncher.forwardInterrupts()
        var failures = 0
        var lines: [String] = []
        let scenarios: [ConcurrentScenario]
        if let name = scenario {
            guard let named = Catalogue.named(name) else {
                throw refuse("explore: no scenario \"\(name)\" (scenarios: \(Catalogue.all.map(\.name).joined(separator: ", ")))",
                             exit: KSFTExit.fail)
            }
            scenarios = [named]
        } else {
            scenarios = Catalogue.all
        }
        for scenario in scenarios {
            for expectation in scenario.expectations {
                var simulated = simulator.simulated
                simulated.variants = Set(expectation.variants.compactMap(SimVariant.init(rawValue:)))
                let explorer = Explorer(scenario, makeMachine: machineFactory(simulated))
                var tally = Tally()
                let started = Sys.monotonicNanoseconds()
                // A variant's finding needs one schedule that shows it; the rest need them all.
                let isFound: (Tally) -> Bool = { expectation.stopsAtFinding && expectation.check($0) == nil }
                explorer.random(count: random, seed: seed, into: &tally, progress: progress, stop: isFound)
                explorer.bounded(preemptions: preemptions, limit: limit, into: &tally, progress: progress, stop: isFound)
                endProgress()
                let seconds = Double(Sys.monotonicNanoseconds() - started) / 1e9
                let variants = expectation.variants.isEmpty ? "stock" : expectation.variants.joined(separator: "+")
                let problem = expectation.check(tally)
                if problem != nil { failures += 1 }
                lines.append("\(problem == nil ? "ok" : "FAIL") \(scenario.name) [\(variants)] \(expectation.summary): "
                             + "\(tally.schedules) schedules, \(tally.outcomes.count) outcomes, "
                             + "\(tally.reports.count) distinct reports, \(Self.seconds(seconds))"
                             + (tally.boundedIncomplete ? " (bounded search cut at --limit)" : ""))
                if let problem { lines.append("  \(problem)") }
                try write(lines.joined(separator: "\n"))
                lines.removeAll()
            }
        }
        try write("\(failures == 0 ? "every expectation met" : "\(failures) expectation(s) not met")")
        if failures > 0 { throw ExitCode(KSFTExit.fail) }
    }

    private func machineFactory(_ simulated: SimulatedKernel) -> Explorer.MachineFactory {
        let base = BackendResolver.simulator(abi: nil, simulated, note: nil).simulated
        return { policy, onStuck in
            var configuration = base
            configuration.schedule = policy
            configuration.printsReports = false
            configuration.onStuck = onStuck
            return SimKernel(configuration: configuration).spawnProcess()
        }
    }

    private func simulatedLabel(_ simulated: SimulatedKernel) -> String {
        BackendResolver.simulator(abi: nil, simulated, note: nil).info.detail
    }

    private func listing() -> String {
        var lines: [String] = []
        for scenario in Catalogue.all {
            lines.append("\(scenario.name): \(scenario.summary)\(scenario.runsOnKernel ? "" : " (simulator only)")")
            for expectation in scenario.expectations {
                let variants = expectation.variants.isEmpty ? "stock" : expectation.variants.joined(separator: " + ")
                lines.append("  [\(variants)] \(expectation.summary): \(expectation.because)")
            }
        }
        lines.append("")
        lines.append("variants (--sim-variant):")
        for variant in SimVariant.allCases { lines.append("  \(variant.rawValue): \(variant.summary)") }
        return lines.joined(separator: "\n")
    }

    private func progress(_ schedules: Int) {
        guard schedules % 100 == 0, Sys.isTerminal(.standardError) else { return }
        try? Sys.writeAll(.standardError, "\r\u{1B}[K\(schedules) schedules")
    }

    private func endProgress() {
        if Sys.isTerminal(.standardError) { try? Sys.writeAll(.standardError, "\r\u{1B}[K") }
    }

    private func write(_ text: String) throws { try Output.write(text, for: "explore") }

    static func seconds(_ value: Double) -> String { JSON.seconds(value) + " s" }
}
