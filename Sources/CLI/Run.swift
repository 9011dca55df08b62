import ABI
import ArgumentParser
import Harness
import Linux
import Suite
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    /// kselftest TAP, line for line what hmm-tests prints.
    case tap
    /// One JSON document.
    case json
    /// JSON Lines: one object per case as it finishes (what the lab reads: a crash loses nothing finished).
    case jsonl
    /// JUnit XML (GitLab, Jenkins).
    case junit
}

/// `dmirror run`: the suite, each case in its own process, kselftest TAP (or JSON, JUnit) out.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the suite (each case in its own process) and print kselftest TAP.",
        discussion: """
            Filters work as in the kernel harness: they are checked in order and the first match \
            decides; with no positive filter (-r, -t, -f, -v) everything runs except the exclusions. \
            A selection of no case is an error (exit 4). \
            Example: dmirror run -T benchmark_thp_migration -v hmm_device_private
            """
    )

    @Option(help: "auto: the real test_hmm driver if /dev/hmm_dmirror0 is test_hmm's and opens, else the simulator.")
    var backend: BackendChoice = .auto

    @Option(help: "The dmirror ioctl ABI generation (default: the running kernel's; the simulator's is 7.3).")
    var abi: ABIGeneration?

    @Option(help: "tap (kselftest), json (one document), jsonl (a line per case as it ends) or junit (JUnit XML).")
    var format: OutputFormat = .tap

    @Option(help: ArgumentHelp("Record each case's dmirror commands in DIR/<case>.trace (see compare-traces).",
                               valueName: "DIR"))
    var trace: String?

    @Option(name: .customLong("trace-digest"),
            help: ArgumentHelp("How --trace digests the data a command returned: fnv1a64w (v2 traces, the default) "
                               + "or fnv1a64 (v1, byte by byte: to compare with traces recorded in v1).",
                               valueName: "NAME"))
    var traceDigest: TraceDigest = .current

    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")],
            help: ArgumentHelp("How many cases run at once (default: 1 on the kernel, which allows no other; "
                               + "the number of online CPUs on the simulator). The report is the same.",
                               valueName: "N"))
    var jobs: Int?

    @Flag(name: .customLong("kmsg-markers"),
          help: "Write BEGIN/END lines for each case to /dev/kmsg (root), so kernel splats can be attributed to cases.")
    var kmsgMarkers = false

    @Flag(name: .customLong("count-walks"),
          help: ArgumentHelp("With --trace on the kernel: install kprobes on walk_page_range() and walk_page_range_vma() "
              + "(root, CONFIG_KPROBE_EVENTS) and record each command's page-table walks (the simulator always counts its own)."))
    var countWalks = false

    @OptionGroup var selection: Selection

    @OptionGroup(title: "Simulator") var simulator: SimulatorOptions

    func validate() throws {
        if backend == .kernel && simulator.given {
            throw ValidationError("--sim-release and --sim-thp configure the simulator; the kernel backend is what it is")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1 (got \(jobs)).") }
    }

    func run() throws {
        // Everything that can be refused is refused before a case runs, arguments before the driver is probed.
        if backend == .kernel, let jobs, jobs > 1 { throw refuse(Self.kernelJobsProblem(jobs), exit: KSFTExit.fail) }
        let plan = try selection.plan(Run.self, Arguments.of(subcommand: "run")) { $0.selection }
        var resolved = try BackendResolver.resolve(backend, abi: abi, simulated: simulator.simulated)
        if countWalks && resolved.backend == .kernel {
            do {
                try WalkProbes.install()
            } catch {
                throw refuse(error.description, exit: KSFTExit.fail)
            }
            resolved.countsWalks = true
        }
        // auto may have picked the kernel.
        if resolved.backend == .kernel, let jobs, jobs > 1 {
            throw refuse(Self.kernelJobsProblem(jobs), exit: KSFTExit.fail)
        }
        if let trace { try OutputPath.prepareDirectory(trace, option: "--trace") }
        let markers: KmsgMarkers?
        do {
            markers = kmsgMarkers ? try KmsgMarkers() : nil
        } catch {
            throw refuse("--kmsg-markers: /dev/kmsg: \(error.named) (it needs root)", exit: KSFTExit.fail)
        }

        let notes = HMMSuite.notes
        let report: SuiteReporter = switch format {
        case .tap: TAPReporter(printsVersion: Sys.environment("KSFT_TAP_LEVEL") == nil, notes: notes)
        case .json: JSONReporter(notes: notes)
        case .jsonl: JSONLinesReporter(notes: notes)
        case .junit: JUnitReporter(notes: notes)
        }
        // A report going to a file or a pipe leaves a person waiting: progress on stderr.
        let reporter = ProgressReporter.wrapping(report)
        let launcher = CaseLauncher(traceDirectory: trace, traceDigest: traceDigest, makeMachine: resolved.makeMachine)
        let workers = jobs ?? (resolved.backend == .kernel ? 1 : Sys.onlineCPUs)
        CaseLauncher.forwardInterrupts()
        let totals = SuiteRunner(launcher: launcher, reporter: reporter, jobs: workers, markers: markers)
            .run(plan, backend: resolved.info)
        if let failure = reporter.sink.failure {
            throw refuse("the report could not be written to \(failure.stream == 1 ? "stdout" : "stderr"): "
                         + "\(failure.errno.named); it is incomplete", exit: KSFTExit.fail)
        }
        throw ExitCode(totals.exitCode)
    }

    /// The one-line refusal of `--jobs` > 1 on the real driver.
    static func kernelJobsProblem(_ jobs: Int) -> String {
        "--jobs \(jobs): the kernel backend runs one case at a time "
            + "(cases share the real devices: closing a device's fd or RELEASE evicts pages other cases use)"
    }
}

/// `dmirror list`: the case names, one per line, in run order.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the cases (fixture.variant.test), one per line, in run order.")

    @OptionGroup var selection: Selection

    func run() throws {
        let plan = try selection.plan(List.self, Arguments.of(subcommand: "list")) { $0.selection }
        var text = ""
        for testCase in plan.cases { text += testCase.name.description + "\n" }
        try Output.write(text, for: "list")
    }
}

/// The command line as argument-parser saw it.
enum Arguments {
    /// The arguments after the subcommand's name.
    static func of(subcommand: String) -> [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let index = all.firstIndex(of: subcommand) else { return all }
        return Array(all[(index + 1)...])
    }
}

/// Output paths, checked before anything runs.
enum OutputPath {
    /// mkdir -p `path`, then proves it is a directory this process can create files in.
    static func prepareDirectory(_ path: String, option: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            do {
                try Sys.mkdir(prefix)
            } catch .EEXIST {
            } catch {
                throw refuse("\(option) \(path): cannot create \(prefix): \(error.named)", exit: KSFTExit.fail)
            }
            prefix += "/"
        }
        do {
            let info = try Sys.stat(path)
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw refuse("\(option) \(path): not a directory", exit: KSFTExit.fail)
            }
            let probe = (path.hasSuffix("/") ? path : path + "/") + ".dmirror-write-test-\(Sys.processID())"
            try Sys.close(try Sys.open(probe, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600))
            try Sys.unlink(probe)
        } catch let error as Errno {
            throw refuse("\(option) \(path): cannot write there: \(error.named)", exit: KSFTExit.fail)
        }
    }
}
