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

    /// The machine each case process builds: this process on the real kernel,
    /// or a process of a fresh simulated kernel.
    var makeMachine: @Sendable () -> any Machine {
        let abi = self.abi
        switch backend {
        case .kernel: return { LinuxMachine(abi: abi) }
        case .simulator: return { SimKernel(configuration: SimConfiguration(abi: abi)).spawnProcess() }
        }
    }
}

enum BackendResolver {
    /// The kernel release the simulator models.
    static let simulatedRelease = "7.3"

    /// Picks the backend. `kernel` needs test_hmm's /dev/hmm_dmirror0 (else the
    /// probe's one line, and the caller exits 4); `auto` falls back to the
    /// simulator and says why on stderr.
    static func resolve(_ choice: BackendChoice, abi forced: ABIGeneration?,
                        probe: () -> KernelDriverProbe = { KernelDriverProbe.probe() }) throws -> ResolvedBackend {
        switch choice {
        case .sim:
            return simulator(abi: forced, note: nil)
        case .kernel, .auto:
            let probed = probe()
            if let message = probed.message {
                if choice == .kernel { throw refuse(message, exit: KSFTExit.skip) }
                StandardError.line("dmirror: auto: running the simulator: \(message)")
                return simulator(abi: forced, note: "auto: \(KernelDriverProbe.node) unusable")
            }
            let abi = forced ?? probed.abi ?? .newest
            var detail = "Linux \(probed.release), ABI \(abi.rawValue)"
            if forced != nil { detail += " (forced)" } else if probed.abi == nil { detail += " (assumed)" }
            detail += ", \(KernelDriverProbe.node)"
            return ResolvedBackend(backend: .kernel, abi: abi,
                                   info: BackendInfo(name: Backend.kernel.rawValue, detail: detail, abi: abi.rawValue))
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
}
