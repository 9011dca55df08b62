import ArgumentParser
import DmirrorDevice
import DmirrorMachine
import DmirrorSuite
#if canImport(Glibc)
import Glibc
#endif

enum BackendChoice: String, CaseIterable, ExpressibleByArgument {
    /// The real driver where /dev/hmm_dmirror0 opens, the simulator otherwise.
    case auto
    case kernel
    case sim
}

enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case tap
    case json
}

/// `dmirror run`: the suite, each case in its own process, kselftest TAP or JSON out.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the suite (each case in its own process) and print kselftest TAP.",
        discussion: """
            Filters work as in the kernel harness: they are checked in order and the first match \
            decides; with no positive filter (-r, -t, -f, -v) everything runs except the exclusions. \
            Example: dmirror run -T benchmark_thp_migration -v hmm_device_private
            """
    )

    @Option(help: "auto: the real test_hmm driver if /dev/hmm_dmirror0 opens, else the simulator.")
    var backend: BackendChoice = .auto

    @Option(help: "The dmirror ioctl ABI generation (default: the running kernel's; the simulator's is 7.3).")
    var abi: ABIGeneration?

    @Option(help: "tap (kselftest) or json (one document).")
    var format: OutputFormat = .tap

    @Option(help: ArgumentHelp("Record each case's dmirror commands in DIR/<case>.trace (see compare-traces).",
                               valueName: "DIR"))
    var trace: String?

    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")],
            help: ArgumentHelp("How many cases run at once (default: 1 on the kernel, which allows no other; "
                               + "the number of online CPUs on the simulator). The report is the same.",
                               valueName: "N"))
    var jobs: Int?

    @OptionGroup var selection: Selection

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1 (got \(jobs)).") }
    }

    func run() throws {
        // Arguments first, as a bad option exits 1 before anything looks for the driver.
        if backend == .kernel, let jobs, let problem = Self.kernelJobsProblem(jobs) {
            FileHandleLite.standardError(problem)
            throw ExitCode(KSFTExitCode.usage)
        }

        let resolved: ResolvedBackend
        switch BackendResolver.resolve(backend, abi: abi) {
        case .success(let backend): resolved = backend
        case .failure(let problem):
            FileHandleLite.standardError("dmirror: \(problem.message)")
            throw ExitCode(KSFTExitCode.skip)
        }

        // auto may have picked the kernel.
        if resolved.backend == .kernel, let jobs, let problem = Self.kernelJobsProblem(jobs) {
            FileHandleLite.standardError(problem)
            throw ExitCode(KSFTExitCode.usage)
        }
        let caseJobs = jobs ?? Self.defaultJobs(for: resolved.backend)

        if let trace, let problem = TraceDirectory.prepare(trace) {
            FileHandleLite.standardError("dmirror: --trace \(trace): \(problem)")
            throw ExitCode(KSFTExitCode.usage)
        }

        let plan = selection.plan
        let reporter: SuiteReporter = switch format {
        case .tap: TAPReporter(printsVersion: getenv("KSFT_TAP_LEVEL") == nil)
        case .json: JSONReporter()
        }
        let executable = IsolatedCaseLauncher.currentExecutable() ?? CommandLine.arguments[0]
        let backendName = resolved.backend.rawValue
        let abiName = resolved.abi.rawValue
        let traceArguments = trace.map { ["--trace", $0] } ?? []
        let launcher = IsolatedCaseLauncher(executable: executable) { suiteCase in
            ["run-case", suiteCase.name, "--backend", backendName, "--abi", abiName,
             "--verdict-fd", String(VerdictChannel.childDescriptor)] + traceArguments
        }
        IsolatedCaseLauncher.forwardInterrupts()
        let totals = SuiteRunner(reporter: reporter, jobs: caseJobs, launcher: launcher).run(plan, backend: resolved.info)
        throw ExitCode(totals.exitCode)
    }

    /// The one-line refusal of `--jobs` > 1 on the real driver, or nil.
    static func kernelJobsProblem(_ jobs: Int) -> String? {
        guard jobs > 1 else { return nil }
        return "dmirror: --jobs \(jobs): the kernel backend runs one case at a time "
            + "(cases share the real devices: closing a device's fd or RELEASE evicts pages other cases use)"
    }

    /// 1 on the kernel (its cases share the devices); the online CPUs on the simulator
    /// (each case process builds its own simulated kernel).
    static func defaultJobs(for backend: Backend) -> Int {
        switch backend {
        case .kernel: return 1
        case .simulator: return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        }
    }
}

/// `dmirror list`: the case names, one per line, in run order.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the cases (fixture.variant.test), one per line, in run order.")

    @OptionGroup var selection: Selection

    func run() throws {
        var text = ""
        for suiteCase in selection.plan.cases { text += suiteCase.name + "\n" }
        print(text, terminator: "")
    }
}

/// `dmirror run-case`: one case in this process (what `run` spawns for each case).
struct RunCase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-case",
        abstract: "Run one case in this process (used by `dmirror run`).",
        shouldDisplay: false
    )

    @Argument(help: "fixture.variant.test")
    var name: String

    @Option(help: "kernel or sim.")
    var backend: Backend

    @Option(help: "The dmirror ioctl ABI generation.")
    var abi: ABIGeneration = .newest

    @Option(name: .customLong("verdict-fd"), help: "Where to write the verdict line.")
    var verdictFD: Int32?

    @Option(help: "Record the case's dmirror commands in DIR/<case>.trace.")
    var trace: String?

    func run() throws {
        CaseInvocation(name: name, backend: backend, abi: abi, verdictFD: verdictFD, traceDirectory: trace).runAndExit()
    }
}

/// What `run-case` was asked to do. `dmirror run` spawns one per case with
/// a fixed argument shape, which main.swift recognises without argument-parser
/// (its reflection costs milliseconds per process).
struct CaseInvocation {
    var name: String
    var backend: Backend
    var abi: ABIGeneration
    var verdictFD: Int32?
    /// Where the case's command trace goes (nil: no trace, and no recording wrapper).
    var traceDirectory: String?

    init(name: String, backend: Backend, abi: ABIGeneration, verdictFD: Int32?, traceDirectory: String? = nil) {
        self.name = name
        self.backend = backend
        self.abi = abi
        self.verdictFD = verdictFD
        self.traceDirectory = traceDirectory
    }

    /// `dmirror run-case <name> --backend B [--abi A] [--verdict-fd N] [--trace DIR]` exactly; nil for anything else.
    init?(arguments: [String]) {
        guard arguments.count >= 3, arguments[1] == "run-case", !arguments[2].hasPrefix("-") else { return nil }
        name = arguments[2]
        var backend: Backend?
        abi = .newest
        var index = 3
        while index + 1 < arguments.count {
            let value = arguments[index + 1]
            switch arguments[index] {
            case "--backend": backend = Backend(rawValue: value)
            case "--abi":
                guard let parsed = ABIGeneration(rawValue: value) else { return nil }
                abi = parsed
            case "--verdict-fd":
                guard let fd = Int32(value) else { return nil }
                verdictFD = fd
            case "--trace": traceDirectory = value
            default: return nil
            }
            index += 2
        }
        guard index == arguments.count, let backend else { return nil }
        self.backend = backend
    }

    func runAndExit() -> Never {
        guard let suiteCase = (HMMSuite.cases + HMMSuite.extraCases + HarnessSelfTest.cases)
            .first(where: { $0.name == name }) else {
            FileHandleLite.standardError("dmirror: no case named \(name); `dmirror list --extra` shows them")
            exit(KSFTExitCode.usage)
        }
        let machine = BackendResolver.makeMachine(backend, abi: abi)
        guard let traceDirectory else {
            CaseProcessChild.runAndExit(suiteCase, on: machine, verdictDescriptor: verdictFD)
        }
        let trace: CommandTrace
        do {
            trace = try CommandTrace.create(directory: traceDirectory, caseName: name)
        } catch {
            FileHandleLite.standardError("dmirror: cannot create \(CommandTrace.path(directory: traceDirectory, caseName: name)): \(error)")
            exit(KSFTExitCode.usage)
        }
        CaseProcessChild.runAndExit(suiteCase, on: TracingMachine(base: machine, trace: trace),
                                    verdictDescriptor: verdictFD, trace: trace)
    }
}

extension Backend: ExpressibleByArgument {}
