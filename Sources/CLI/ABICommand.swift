import ArgumentParser
import ABI
import Harness
import Syscalls

/// `dmirror abi [RELEASE]`: which ioctl numbering a kernel release speaks.
/// The one place outside the ABI module that answers it, so scripts (the lab) ask here.
struct ABICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abi",
        abstract: "Print the dmirror ioctl ABI generation of a kernel release (default: the running kernel).")

    @Argument(help: "A `uname -r` release, e.g. 7.3.4-amd64.")
    var release: String?

    @Option(help: "text (the generation) or json (release, generation and every request number).")
    var format: ReportFormat = .text

    func run() throws {
        let release = self.release ?? Sys.kernelRelease()
        guard let abi = ABIGeneration(kernelRelease: release) else {
            throw refuse("abi: \(release.debugDescription) is not a Linux release of 5.7 or later (test_hmm appeared in 5.7)",
                         exit: KSFTExit.skip)
        }
        switch format {
        case .text:
            try Output.write(abi.rawValue, for: "abi")
        case .json:
            let q = JSON.quote
            let commands = DmirrorCommand.allCases.map { command in
                "\(q(command.kernelName)): " + (abi.request(for: command).map { q("0x" + String($0, radix: 16)) } ?? "null")
            }
            try Output.write("{\"release\": \(q(release)), \"abi\": \(q(abi.rawValue)), \"requests\": {\(commands.joined(separator: ", "))}}",
                             for: "abi")
        }
    }
}
