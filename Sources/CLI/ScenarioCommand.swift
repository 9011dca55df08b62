import ABI
import ArgumentParser
import Harness
import Linux
import Scenario
import Syscalls

/// `dmirror scenario FILE...|-`: scenario files, each in its own process, one result line per operation.
struct ScenarioCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run scenario files (docs/scenarios.md): one result line per operation.",
        discussion: """
            Every file is parsed before anything runs; a malformed line is one error naming \
            file:line:column, and exit 1. Each scenario runs in its own process with a fresh machine, \
            so a CPU access the kernel answers with SIGSEGV or SIGBUS ends that scenario with that \
            result line and the next one runs. On the simulator the shadow model and the kernel's \
            invariants are checked after every operation (! lines). Exit status: 0 if every scenario \
            passed (its expect lines held and no invariant broke), 1 otherwise, 4 if the backend cannot run. \
            Scenarios that open no device run on --backend kernel without test_hmm. \
            Example: dmirror scenario --backend sim Tests/Scenarios/*.scn
            """
    )

    @Argument(help: ArgumentHelp("Scenario files; - reads one from standard input.", valueName: "FILE"))
    var files: [String]

    @Option(help: "text (result lines) or jsonl (one JSON object per scenario).")
    var format: ScenarioFormat = .text

    @Flag(name: .customLong("no-checks"), help: "Do not check the shadow model and invariants (simulator).")
    var noChecks = false

    @OptionGroup var backendOptions: ScenarioBackendOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one scenario file (or - for standard input)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("- (standard input) can be given once") }
    }

    func run() throws {
        // Every file is read and checked before anything runs.
        var scenarios: [Scenario] = []
        var errors: [ScenarioError] = []
        for file in files {
            do throws(ScenarioError) {
                scenarios.append(try ScenarioInput.load(file))
            } catch {
                errors.append(error)
            }
        }
        if !errors.isEmpty {
            for error in errors.dropLast() { StandardError.line("dmirror: \(error)") }
            throw refuse(errors.last!.description, exit: KSFTExit.fail)
        }
        let usesDevices = scenarios.contains { ScenarioFacts.opensDevice($0.statements) }
        let resolved = try backendOptions.resolve(needsDriver: usesDevices)
        let options = ScenarioRunOptions(checks: !noChecks, buffers: backendOptions.buffers(resolved), prepareProcess: quietFaults)
        let cases = scenarios.map { ScenarioCase.make($0, name: $0.name, options: options, emit: scenarioEmit) }
        var kernelReports = [ScenarioReport?](repeating: nil, count: scenarios.count)
        let reporter = ScenarioReporter(format: format, scenarios: scenarios) { k, report in kernelReports[k] = report }
        let workers = backendOptions.workers(resolved)
        let markers = try backendOptions.markers()
        CaseLauncher.forwardInterrupts()
        SuiteRunner(launcher: CaseLauncher(makeMachine: resolved.makeMachine), reporter: reporter, jobs: workers,
                    markers: markers)
            .run(RunPlan(cases: cases), backend: resolved.info)
        var differing = 0
        if backendOptions.againstSim {
            let twin = SimulatorTwin.ofRunningKernel(abi: resolved.abi)
            let simulated = twin.runner(timeout: nil).reports(scenarios)
            for (k, scenario) in scenarios.enumerated() {
                guard let kernel = kernelReports[k] else { continue }
                if let difference = SimulatorTwin.difference(kernel: kernel, simulator: simulated[k]) {
                    differing += 1
                    reporter.sink.out(format == .jsonl
                        ? "{\"scenario\": \(JSON.quote(scenario.name)), \"against_sim\": \(JSON.quote(difference))}"
                        : "# \(scenario.name): differs from the simulator (\(twin.resolved.info.detail)): \(difference)")
                }
            }
            let same = scenarios.count - differing
            reporter.sink.out(format == .jsonl ? "{\"against_sim\": {\"same\": \(same), \"differ\": \(differing)}}"
                              : "# against the simulator: \(same) same, \(differing) differ")
        }
        if let failure = reporter.sink.failure {
            throw refuse("the report could not be written to \(failure.stream == 1 ? "stdout" : "stderr"): "
                         + "\(failure.errno.named); it is incomplete", exit: KSFTExit.fail)
        }
        throw ExitCode(reporter.failed == 0 && differing == 0 ? KSFTExit.pass : KSFTExit.fail)
    }
}

/// The backend of `scenario` and `fuzz`: as `run` resolves it, except that
/// scenarios that open no device run on the real kernel without test_hmm.
enum ScenarioBackend {
    static func resolve(_ choice: BackendChoice, abi: ABIGeneration?, simulator: SimulatorOptions,
                        needsDriver: Bool) throws -> ResolvedBackend {
        if choice == .kernel && !needsDriver {
            let release = Sys.kernelRelease()
            let generation = abi ?? ABIGeneration(kernelRelease: release) ?? .newest
            return ResolvedBackend(backend: .kernel, abi: generation,
                                   info: BackendInfo(name: Backend.kernel.rawValue,
                                                     detail: "Linux \(release), mm only (no device opened)",
                                                     abi: generation.rawValue))
        }
        return try BackendResolver.resolve(choice, abi: abi, simulated: simulator.simulated)
    }
}

/// What a scenario needs, read from its statements.
enum ScenarioFacts {
    /// Statements, fork bodies included.
    static func count(_ statements: [Statement]) -> Int {
        statements.reduce(0) { total, s in
            if case .fork(let body) = s.operation { return total + 1 + count(body) }
            return total + 1
        }
    }

    static func opensDevice(_ statements: [Statement]) -> Bool {
        statements.contains { statement in
            switch statement.operation {
            case .open: true
            case .fork(let body): opensDevice(body)
            default: false
            }
        }
    }
}
