import ABI
import ArgumentParser
import Harness
import Linux
import MachineInterface
import Suite
import Syscalls
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror doctor`: what this machine can run, and why not.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what this machine offers the kernel backend, and which cases would skip without it.",
        discussion: """
            One line per check, ✔ or ✘ with the fix: the kernel release and its ABI, CONFIG_TEST_HMM, the \
            module, the four devices (and which are device-coherent), root, THP, the hugetlb pool, gup_test \
            and userfaultfd. Exit status: 0 when the whole suite can run on the real driver, 4 otherwise.
            """
    )

    @Option(help: ArgumentHelp("Read /proc, /sys, /dev, /boot and /lib/modules under DIR (a guest's root filesystem, "
                               + "or a fake tree).", valueName: "DIR"))
    var root = "/"

    func run() throws {
        switch Result(catching: { () throws(Errno) in try Sys.stat(root) }) {
        case .failure(let error): throw refuse("doctor: --root \(root): \(error.named)", exit: KSFTExit.fail)
        case .success(let info) where info.st_mode & S_IFMT != S_IFDIR:
            throw refuse("doctor: --root \(root): not a directory", exit: KSFTExit.fail)
        case .success: break
        }
        let checks = Doctor.run(Doctor.System(root: root))
        var lines: [String] = []
        for check in checks {
            var line = "\(check.ok ? "✔" : "✘") \(check.name): \(check.detail)"
            if !check.ok, let fix = check.fix { line += " — \(fix)" }
            lines.append(line)
            if !check.ok, let capability = check.capability {
                lines.append("    " + Self.skipping(capability))
            }
        }
        let failed = checks.filter { !$0.ok }.count
        lines.append(failed == 0 ? "the whole suite can run on the real driver"
                     : "\(failed) check(s) failed: dmirror run --backend kernel would not run every case")
        try Output.write(lines.joined(separator: "\n"), for: "doctor")
        if failed > 0 { throw ExitCode(KSFTExit.skip) }
    }

    /// Which cases lack `capability`, in a line.
    static func skipping(_ capability: MachineCapability) -> String {
        if capability == .driver { return "without it no case runs on the kernel (the simulator still does: --backend sim)" }
        let names = HMMSuite.caseNames(needing: capability)
        let shown = names.count <= 4 ? names.joined(separator: ", ")
            : names.prefix(3).joined(separator: ", ") + " and \(names.count - 3) more"
        return "without \(capability): \(names.count) case(s) skip or cannot pass: \(shown)"
    }
}
