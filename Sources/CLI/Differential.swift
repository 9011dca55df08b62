import ABI
import ArgumentParser
import Harness
import Linux
import Scenario
import Simulator
import Syscalls

/// The backend options `scenario` and `fuzz` share: which machine, its ABI, how many
/// scenarios at once, and on the kernel, the simulator beside it and the kmsg markers.
struct ScenarioBackendOptions: ParsableArguments {
    @Option(help: "auto: the real test_hmm driver if /dev/hmm_dmirror0 is test_hmm's and opens, else the simulator.")
    var backend: BackendChoice = .auto

    @Option(help: "The dmirror ioctl ABI generation (default: the running kernel's; the simulator's is 7.3).")
    var abi: ABIGeneration?

    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")],
            help: ArgumentHelp("Scenarios at once (default: 1 on the kernel, the number of CPUs on the simulator).",
                               valueName: "N"))
    var jobs: Int?

    @Flag(name: .customLong("against-sim"),
          help: "With --backend kernel: run each scenario again on the simulator configured as this kernel; where the result lines differ, the scenario fails.")
    var againstSim = false

    @Flag(name: .customLong("kmsg-markers"),
          help: "Write BEGIN/END lines for each scenario to /dev/kmsg (root), so kernel splats can be attributed to scenarios.")
    var kmsgMarkers = false

    @OptionGroup(title: "Simulator") var simulator: SimulatorOptions

    func validate() throws {
        if backend == .kernel && simulator.given {
            throw ValidationError("--sim-release and --sim-thp configure the simulator; the kernel backend is what it is")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1 (got \(jobs)).") }
        if againstSim && backend != .kernel {
            throw ValidationError("--against-sim compares the real driver with the simulator: it needs --backend kernel")
        }
    }

    /// The backend (ScenarioBackend.resolve), refusing -j > 1 on the kernel, whose devices the scenarios share.
    func resolve(needsDriver: Bool) throws -> ResolvedBackend {
        let resolved = try ScenarioBackend.resolve(backend, abi: abi, simulator: simulator, needsDriver: needsDriver)
        if resolved.backend == .kernel, let jobs, jobs > 1 { throw refuse(Run.kernelJobsProblem(jobs), exit: KSFTExit.fail) }
        return resolved
    }

    /// Scenarios at once: --jobs, else 1 on the kernel and one per CPU on the simulator.
    func workers(_ resolved: ResolvedBackend) -> Int { jobs ?? (resolved.backend == .kernel ? 1 : Sys.onlineCPUs) }

    /// The driver's buffers: shared memory on the kernel (SharedBuffers), the heap on the simulator.
    func buffers(_ resolved: ResolvedBackend) -> any ScenarioBuffers {
        resolved.backend == .kernel ? SharedBuffers() : HeapBuffers()
    }

    /// The markers `--kmsg-markers` asks for, or nil.
    func markers() throws -> KmsgMarkers? {
        do throws(Errno) {
            return kmsgMarkers ? try KmsgMarkers() : nil
        } catch {
            throw refuse("--kmsg-markers: /dev/kmsg: \(error.named) (it needs root)", exit: KSFTExit.fail)
        }
    }
}

/// `--against-sim` of `scenario` and `fuzz`: every scenario the real driver ran runs
/// again on the simulator configured as the running kernel, and the two lists of
/// result lines must be equal. The kernel is the oracle, so a difference is the
/// simulator's to explain: fixed there, or recorded as a kernel finding.
struct SimulatorTwin {
    let resolved: ResolvedBackend

    /// The simulator as this kernel: its release (ABI and behaviour), its THP mode,
    /// and the coherent devices only if test_hmm has them here.
    static func ofRunningKernel(abi: ABIGeneration) -> SimulatorTwin {
        let release = KernelVersion(release: Sys.kernelRelease()) ?? SimConfiguration.newestRelease
        let text = SysFile.read("/sys/kernel/mm/transparent_hugepage/enabled", limit: 256) ?? ""
        let mode = text.split(separator: " ").first { $0.hasPrefix("[") }
            .flatMap { SimConfiguration.THPMode(rawValue: String($0.dropFirst().prefix { $0 != "]" })) } ?? .never
        var resolved = BackendResolver.simulator(abi: abi, SimulatedKernel(release: release, thp: mode), note: nil)
        resolved.simulated.hasCoherentDevices = (try? Sys.access("/dev/hmm_dmirror2", F_OK)) != nil
        return SimulatorTwin(resolved: resolved)
    }

    /// Runs scenarios on the simulator, in parallel, nothing printed.
    func runner(timeout: Double?) -> FuzzRunner {
        FuzzRunner(launcher: CaseLauncher(timeoutOverride: timeout, makeMachine: resolved.makeMachine),
                   workers: Sys.onlineCPUs,
                   options: ScenarioRunOptions(checks: true, buffers: HeapBuffers(), prepareProcess: quietFaults),
                   backend: resolved.info)
    }

    /// Where the kernel's result lines and the simulator's first part, or nil if they are equal.
    static func difference(kernel: ScenarioReport, simulator: ScenarioReport) -> String? {
        let a = kernel.comparableLines, b = simulator.comparableLines
        guard a != b else { return nil }
        let index = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        let k = index < a.count ? a[index] : "(nothing)", s = index < b.count ? b[index] : "(nothing)"
        return "result line \(index + 1): kernel `\(k)`, simulator `\(s)`"
    }
}

#if canImport(Glibc)
import Glibc
#endif
