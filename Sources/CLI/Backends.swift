import ABI
import ArgumentParser
import Harness
import Linux
import MachineInterface
import Simulator

/// Which implementation of `Machine` a run uses.
enum Backend: String, CaseIterable, ExpressibleByArgument, CustomStringConvertible {
    /// The running kernel and its test_hmm driver.
    case kernel
    /// dmirror's simulator of the kernel's mm and of test_hmm.
    case simulator = "sim"
    var description: String { rawValue }
}

/// `--backend`: a backend, or `auto`.
enum BackendChoice: String, CaseIterable, ExpressibleByArgument {
    /// The real driver where /dev/hmm_dmirror0 is test_hmm's and opens, the simulator otherwise.
    case auto
    case kernel
    case sim
}

extension ABIGeneration: ExpressibleByArgument {}

/// The backend a run uses, and how its report names it.
struct ResolvedBackend {
    var backend: Backend
    var abi: ABIGeneration
    var info: BackendInfo
    /// What the simulator models (unused on the kernel).
    var simulated = SimConfiguration()

    /// The machine each case process builds: this process on the real kernel,
    /// or a process of a fresh simulated kernel.
    /// The kernel's walk kprobes are installed and read (`--count-walks`).
    var countsWalks = false

    var makeMachine: @Sendable () -> any Machine {
        let abi = self.abi
        let countsWalks = self.countsWalks
        switch backend {
        case .kernel: return { LinuxMachine(abi: abi, countsWalks: countsWalks) }
        case .simulator:
            let configuration = simulated
            return { SimKernel(configuration: configuration).spawnProcess() }
        }
    }
}

enum BackendResolver {
    /// Picks the backend. `kernel` needs test_hmm's /dev/hmm_dmirror0 (else the
    /// probe's one line, and the caller exits 4); `auto` falls back to the
    /// simulator and says why on stderr.
    static func resolve(_ choice: BackendChoice, abi forced: ABIGeneration?, simulated: SimulatedKernel = SimulatedKernel(),
                        probe: () -> KernelDriverProbe = { KernelDriverProbe.probe() }) throws -> ResolvedBackend {
        switch choice {
        case .sim:
            return simulator(abi: forced, simulated, note: nil)
        case .kernel, .auto:
            let probed = probe()
            if let message = probed.message {
                if choice == .kernel { throw refuse(message, exit: KSFTExit.skip) }
                StandardError.line("dmirror: auto: running the simulator: \(message)")
                return simulator(abi: forced, simulated, note: "auto: \(KernelDriverProbe.node) unusable")
            }
            let abi = forced ?? probed.abi ?? .newest
            var detail = "Linux \(probed.release), ABI \(abi.rawValue)"
            if forced != nil { detail += " (forced)" } else if probed.abi == nil { detail += " (assumed)" }
            detail += ", \(KernelDriverProbe.node)"
            return ResolvedBackend(backend: .kernel, abi: abi,
                                   info: BackendInfo(name: Backend.kernel.rawValue, detail: detail, abi: abi.rawValue))
        }
    }

    static func simulator(abi forced: ABIGeneration?, _ simulated: SimulatedKernel, note: String?) -> ResolvedBackend {
        var configuration = SimConfiguration(thpEnabled: simulated.thp, release: simulated.release, abi: forced)
        configuration.variants = simulated.variants
        let abi = configuration.abi
        var detail = "simulated Linux \(simulated.release.major).\(simulated.release.minor) test_hmm"
        if abi != ABIGeneration(simulated.release) { detail += ", ABI \(abi.rawValue)" }
        if simulated.thp != .madvise { detail += ", THP \(simulated.thp.rawValue)" }
        if !simulated.variants.isEmpty {
            detail += ", bug variant(s) " + simulated.variants.map(\.rawValue).sorted().joined(separator: ", ")
        }
        if let note { detail += "; \(note)" }
        return ResolvedBackend(backend: .simulator, abi: abi,
                               info: BackendInfo(name: Backend.simulator.rawValue, detail: detail, abi: abi.rawValue),
                               simulated: configuration)
    }
}

/// What the simulator is asked to model (`--sim-release`, `--sim-thp`).
struct SimulatedKernel {
    var release = SimConfiguration.newestRelease
    var thp = SimConfiguration.THPMode.madvise
    var variants: Set<SimVariant> = []
}

extension SimConfiguration.THPMode: ExpressibleByArgument {}
extension SimVariant: ExpressibleByArgument {}
extension TraceDigest: ExpressibleByArgument {}

/// The simulator's options, shared by the commands that run it.
struct SimulatorOptions: ParsableArguments {
    @Option(name: .customLong("sim-release"),
            help: ArgumentHelp("The kernel release the simulator models (e.g. 6.1.0, 6.12.57); it decides the ABI "
                               + "and the driver's behaviour. Default 7.3.4.", valueName: "RELEASE"))
    var release: String?

    @Option(name: .customLong("sim-thp"),
            help: ArgumentHelp("The simulated /sys/kernel/mm/transparent_hugepage/enabled (always, madvise, never).",
                               valueName: "MODE"))
    var thp: SimConfiguration.THPMode = .madvise

    @Option(name: .customLong("sim-variant"),
            help: ArgumentHelp("Run the simulator with a known bug pattern in its driver or mm (repeatable; "
                               + "`dmirror explore --list` describes each).", valueName: "NAME"))
    var variants: [SimVariant] = []

    var given: Bool { release != nil || thp != .madvise || !variants.isEmpty }

    func validate() throws {
        if let release {
            guard let version = KernelVersion(release: release), ABIGeneration(version) != nil else {
                throw ValidationError("--sim-release \(release): not a Linux release of 5.7 or later")
            }
        }
    }

    var simulated: SimulatedKernel {
        SimulatedKernel(release: release.flatMap { KernelVersion(release: $0) } ?? SimConfiguration.newestRelease, thp: thp,
                        variants: Set(variants))
    }
}
