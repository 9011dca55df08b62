import ABI
import ArgumentParser
import Harness
import Scenario
import Syscalls

/// `dmirror fuzz`: random scenarios from a seed, invariant checks on the simulator, failures shrunk.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Run random scenarios from a seed; shrink each failing one to a minimal scenario file.",
        discussion: """
            Scenario i of a seed is the same on every machine and backend (fuzz-SEED-i), so the kernel's \
            run and the simulator's compare line by line (--format jsonl). On the simulator the shadow \
            model and the kernel's invariants are checked after every operation. A failing scenario \
            (an invariant violation, a crash, a timeout) is shrunk and written to --out as \
            fuzz-SEED-i.scn. The last line gives the throughput. Exit status: 0 if every scenario \
            passed, 1 otherwise, 4 if the backend cannot run. \
            Example: dmirror fuzz --backend sim --seed 1 --count 10000 --length 24 --out /tmp/fuzz
            """
    )

    @Option(help: "The run's seed.")
    var seed: UInt64 = 1

    @Option(help: "How many scenarios.")
    var count: Int = 100

    @Option(help: "The first scenario's index (scenario i of a seed is the same in any run: --first 7 --count 1 makes fuzz-SEED-7 again).")
    var first: Int = 0

    @Option(help: "Operations per scenario (besides its setup).")
    var length: Int = 20

    @Option(help: ArgumentHelp("Where shrunk failing scenarios are written (fuzz-SEED-i.scn).", valueName: "DIR"))
    var out: String?

    @Flag(name: .customLong("write-all"), help: "Also write every generated scenario to --out (for replaying them elsewhere).")
    var writeAll = false

    @Option(name: .customLong("max-shrink"), help: "Most candidate runs when shrinking one scenario.")
    var maxShrink: Int = 1500

    @Option(name: .customLong("shrink-limit"), help: "Most failing scenarios to shrink.")
    var shrinkLimit: Int = 5

    @Option(help: ArgumentHelp("Seconds a scenario may run before it counts as hung.", valueName: "SECONDS"))
    var timeout: Double = 10

    @Option(help: "text (failing scenarios and the summary) or jsonl (every scenario, one JSON object each).")
    var format: ScenarioFormat = .text

    @OptionGroup var backendOptions: ScenarioBackendOptions

    func validate() throws {
        guard (1...10_000_000).contains(count) else { throw ValidationError("--count must be 1 to 10000000 (got \(count))") }
        guard (1...1000).contains(length) else { throw ValidationError("--length must be 1 to 1000 (got \(length))") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard first >= 0 else { throw ValidationError("--first must be at least 0") }
        guard maxShrink >= 0 else { throw ValidationError("--max-shrink must be at least 0") }
        if writeAll && out == nil { throw ValidationError("--write-all needs --out DIR") }
    }

    func run() throws {
        if let out { try OutputPath.prepareDirectory(out, option: "--out") }
        let resolved = try backendOptions.resolve(needsDriver: true)
        let workers = backendOptions.workers(resolved)
        let options = ScenarioRunOptions(checks: true, buffers: backendOptions.buffers(resolved), prepareProcess: quietFaults)
        let markers = try backendOptions.markers()
        let runner = FuzzRunner(launcher: CaseLauncher(timeoutOverride: timeout, makeMachine: resolved.makeMachine),
                                workers: workers,
                                options: options, backend: resolved.info, markers: markers)
        let twin = backendOptions.againstSim ? SimulatorTwin.ofRunningKernel(abi: resolved.abi) : nil
        let twinRunner = twin?.runner(timeout: timeout)
        var differences: [(index: Int, scenario: Scenario, difference: String)] = []
        let generator = ScenarioGenerator(length: length)
        CaseLauncher.forwardInterrupts()

        let sink = StandardSink()
        var failures: [(index: Int, scenario: Scenario, report: ScenarioReport)] = []
        var violations = 0
        let started = Sys.monotonicNanoseconds()
        // Batches keep memory bounded (each case's output is held until its batch is reported).
        var next = first
        var printedHeader = false
        while next < first + count {
            let indices = Array(next..<min(next + 1000, first + count))
            var scenarios: [Scenario] = []
            for index in indices {
                do throws(ScenarioError) {
                    scenarios.append(try generator.numbered(seed: seed, index: index))
                } catch {
                    throw refuse("the generator made an invalid scenario (a dmirror bug): \(error)", exit: KSFTExit.fail)
                }
            }
            if writeAll, let out { try write(scenarios, to: out) }
            var kernelReports = [ScenarioReport?](repeating: nil, count: scenarios.count)
            let reporter = ScenarioReporter(format: format, scenarios: scenarios, failuresOnly: format == .text,
                                            sink: sink, printsHeader: !printedHeader, printsTotals: false) { k, report in
                violations += report.violations
                kernelReports[k] = report
                if !report.passed { failures.append((indices[k], scenarios[k], report)) }
            }
            printedHeader = true
            runner.run(scenarios, reporter: reporter)
            if let twinRunner {
                for (k, simulated) in twinRunner.reports(scenarios).enumerated() {
                    guard let kernel = kernelReports[k],
                          let difference = SimulatorTwin.difference(kernel: kernel, simulator: simulated) else { continue }
                    differences.append((indices[k], scenarios[k], difference))
                    sink.out(format == .jsonl
                        ? "{\"scenario\": \(JSON.quote(scenarios[k].name)), \"against_sim\": \(JSON.quote(difference))}"
                        : "# \(scenarios[k].name): differs from the simulator: \(difference)")
                }
            }
            next += indices.count
        }
        let seconds = Double(Sys.monotonicNanoseconds() - started) / 1e9
        let rate = Double(count) / max(seconds, 1e-9)

        for failure in failures.prefix(shrinkLimit) {
            try shrink(failure.scenario, failure.report, runner: runner, sink: sink)
        }
        if let twinRunner {
            for d in differences.prefix(max(0, shrinkLimit - failures.count)) {
                try shrinkDifference(d.scenario, d.difference, kernel: runner, simulator: twinRunner, sink: sink)
            }
        }
        if failures.count > shrinkLimit {
            sink.out("# \(failures.count - shrinkLimit) more failing scenario(s) not shrunk (--shrink-limit \(shrinkLimit))")
        }
        var summary = "\(count) scenarios in \(TextFormat.fixed(seconds, 2)) s: \(TextFormat.fixed(rate, 1)) scenarios/s "
            + "(backend \(resolved.info.name), -j \(workers), length \(length), seed \(seed)); "
            + "\(failures.count) failed, \(violations) invariant violation(s)"
        if let twin { summary += "; \(differences.count) differ from the simulator (\(twin.resolved.info.detail))" }
        switch format {
        case .text: sink.out("# fuzz: " + summary)
        case .jsonl:
            sink.out("{\"fuzz\": {\"count\": \(count), \"seconds\": \(TextFormat.fixed(seconds, 3)), \"rate\": \(TextFormat.fixed(rate, 1)), "
                     + "\"failed\": \(failures.count), \"violations\": \(violations), \"differ\": \(differences.count)}, "
                     + "\"passed\": \(failures.isEmpty && differences.isEmpty)}")
        }
        if let failure = sink.failure {
            throw refuse("the report could not be written: \(failure.errno.named); it is incomplete", exit: KSFTExit.fail)
        }
        throw ExitCode(failures.isEmpty && differences.isEmpty ? KSFTExit.pass : KSFTExit.fail)
    }

    /// Shrinks a scenario whose kernel and simulator lines differ, keeping them different,
    /// and writes it out with both sides' first differing line.
    func shrinkDifference(_ scenario: Scenario, _ difference: String, kernel: FuzzRunner, simulator: FuzzRunner,
                          sink: ReportSink) throws {
        let shrinker = ScenarioShrinker(maxAttempts: maxShrink, batchSize: max(simulator.workers, 2))
        let result = shrinker.shrink(scenario) { candidates in
            zip(kernel.reports(candidates), simulator.reports(candidates)).map {
                SimulatorTwin.difference(kernel: $0, simulator: $1) != nil
            }
        }
        let shrunk = zip(kernel.reports([result.scenario]), simulator.reports([result.scenario]))
            .compactMap { SimulatorTwin.difference(kernel: $0, simulator: $1) }.first ?? difference
        let before = ScenarioFacts.count(scenario.statements), after = ScenarioFacts.count(result.scenario.statements)
        let header = [
            "dmirror fuzz --seed \(seed) --length \(length) --against-sim: \(scenario.name), shrunk from \(before) to "
                + "\(after) statements in \(result.attempts) runs",
            "differs from the simulator: " + shrunk,
        ]
        try writeShrunk(result.scenario, header: header, as: scenario.name + " (differs)", file: scenario.name + ".diff.scn",
                        from: before, to: after, attempts: result.attempts, sink: sink)
    }

    /// Writes a shrunk scenario to --out (or prints it as comments) and says so.
    func writeShrunk(_ scenario: Scenario, header: [String], as label: String, file: String,
                     from before: Int, to after: Int, attempts: Int, sink: ReportSink) throws {
        let text = ScenarioPrinter.print(scenario, header: header)
        let what = "# shrunk \(label): \(before) → \(after) statements (\(attempts) runs)"
        if let out {
            let path = (out.hasSuffix("/") ? out : out + "/") + file
            try writeFile(path, text)
            sink.out(what + ": " + path)
        } else {
            sink.out(what + "; with --out DIR it is written there:")
            for line in text.split(separator: "\n") { sink.out("#   " + line) }
        }
    }

    /// Shrinks one failing scenario (same failure signature) and writes it out.
    func shrink(_ scenario: Scenario, _ report: ScenarioReport, runner: FuzzRunner, sink: ReportSink) throws {
        let signature = report.signature
        let shrinker = ScenarioShrinker(maxAttempts: maxShrink, batchSize: max(runner.workers, 2))
        let result = shrinker.shrink(scenario) { candidates in
            runner.reports(candidates).map { !$0.passed && $0.signature == signature }
        }
        let before = ScenarioFacts.count(scenario.statements), after = ScenarioFacts.count(result.scenario.statements)
        let header = [
            "dmirror fuzz --seed \(seed) --length \(length): \(scenario.name), shrunk from \(before) to \(after) statements "
                + "in \(result.attempts) runs",
            "failure: " + (report.reasons.first ?? "?"),
        ]
        try writeShrunk(result.scenario, header: header, as: scenario.name, file: scenario.name + ".scn",
                        from: before, to: after, attempts: result.attempts, sink: sink)
    }

    func write(_ scenarios: [Scenario], to directory: String) throws {
        for s in scenarios {
            try writeFile((directory.hasSuffix("/") ? directory : directory + "/") + s.name + ".scn", ScenarioPrinter.print(s))
        }
    }

    func writeFile(_ path: String, _ text: String) throws {
        do throws(Errno) {
            let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            defer { try? Sys.close(fd) }
            try Sys.writeAll(fd, text)
        } catch {
            throw refuse("\(path): cannot write: \(error.named)", exit: KSFTExit.fail)
        }
    }
}

/// Runs batches of scenarios as harness cases (each in its own process).
struct FuzzRunner {
    let launcher: CaseLauncher
    let workers: Int
    let options: ScenarioRunOptions
    let backend: BackendInfo
    /// BEGIN/END of each scenario in /dev/kmsg (the kernel's runs).
    var markers: KmsgMarkers? = nil

    func cases(_ scenarios: [Scenario]) -> RunPlan {
        RunPlan(cases: scenarios.map { ScenarioCase.make($0, name: $0.name, options: options, emit: scenarioEmit) })
    }

    func run(_ scenarios: [Scenario], reporter: ScenarioReporter) {
        SuiteRunner(launcher: launcher, reporter: reporter, jobs: workers, markers: markers).run(cases(scenarios), backend: backend)
    }

    /// The reports of `scenarios`, nothing printed.
    func reports(_ scenarios: [Scenario]) -> [ScenarioReport] {
        var reports = [ScenarioReport?](repeating: nil, count: scenarios.count)
        let reporter = ScenarioReporter(format: .text, scenarios: scenarios, failuresOnly: true, sink: MemorySink(),
                                        printsHeader: false, printsTotals: false) { k, report in reports[k] = report }
        run(scenarios, reporter: reporter)
        return reports.map { $0 ?? ScenarioReport(lines: [], passed: false, reasons: ["no result"], violations: 0, signature: nil) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
