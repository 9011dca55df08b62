import DmirrorDevice
import DmirrorMachine
import DmirrorSimulator
import DmirrorSuite

/// The backend a run uses, and how its first line names it.
struct ResolvedBackend {
    var backend: Backend
    var abi: ABIGeneration
    var info: BackendInfo
}

struct BackendProblem: Error {
    var message: String
}

enum BackendResolver {
    /// The kernel release the simulator models.
    static let simulatedRelease = "7.3"

    /// Picks the backend: `kernel` needs /dev/hmm_dmirror0 (else one line saying
    /// what to do, and the caller exits 4); `auto` falls back to the simulator.
    static func resolve(_ choice: BackendChoice, abi forced: ABIGeneration?,
                        probe: () -> KernelDriverProbe = KernelDriverProbe.probe) -> Result<ResolvedBackend, BackendProblem> {
        switch choice {
        case .sim:
            return .success(simulator(abi: forced, note: nil))
        case .kernel, .auto:
            let probed = probe()
            if let problem = probed.problem {
                if choice == .kernel { return .failure(BackendProblem(message: problem)) }
                let why = probed.openError.map { $0.name } ?? "unavailable"
                return .success(simulator(abi: forced, note: "auto: \(KernelDmirrorFile.path(unit: 0)) \(why)"))
            }
            let abi = forced ?? probed.abi ?? .newest
            var detail = "Linux \(probed.release), ABI \(abi.rawValue)"
            if forced != nil { detail += " (forced)" } else if probed.abi == nil { detail += " (assumed)" }
            detail += ", \(KernelDmirrorFile.path(unit: 0))"
            return .success(ResolvedBackend(backend: .kernel, abi: abi,
                                            info: BackendInfo(name: Backend.kernel.rawValue, detail: detail, abi: abi.rawValue)))
        }
    }

    static func simulator(abi forced: ABIGeneration?, note: String?) -> ResolvedBackend {
        let abi = forced ?? .newest
        var detail = "simulated Linux \(simulatedRelease) test_hmm"
        if abi != .newest { detail += ", ABI \(abi.rawValue)" }
        if let note { detail += "; \(note)" }
        return ResolvedBackend(backend: .simulator, abi: abi,
                               info: BackendInfo(name: Backend.simulator.rawValue, detail: detail, abi: abi.rawValue))
    }

    /// The machine a case process runs on: this process on the real kernel,
    /// or a process of a fresh simulated kernel.
    static func makeMachine(_ backend: Backend, abi: ABIGeneration) -> any Machine {
        switch backend {
        case .kernel: LinuxMachine(abi: abi)
        case .simulator: SimKernel(configuration: SimConfiguration(abi: abi)).spawnProcess()
        }
    }
}
