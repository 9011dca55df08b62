import Harness
import Syscalls

/// The one writer of a command's report to stdout. A report that cannot be
/// written (a full disk, a closed pipe) fails the command with one line: nothing
/// is lost silently behind an exit status of 0.
enum Output {
    static func write(_ text: String, for command: String) throws {
        do {
            try Sys.writeAll(.standardOutput, text.hasSuffix("\n") ? text : text + "\n")
        } catch {
            throw refuse("\(command): stdout: \(error.named)", exit: KSFTExit.fail)
        }
    }
}
