import ArgumentParser
import Harness

// argument-parser's entry point, except that a usage error exits 1 as
// kselftest's harness does (argument-parser's own code for it is 64).
do {
    var command = try Dmirror.parseAsRoot()
    try command.run()
} catch {
    if Dmirror.exitCode(for: error) == .validationFailure {
        StandardError.line(Dmirror.fullMessage(for: error))
        Dmirror.exit(withError: ExitCode(KSFTExit.fail))
    }
    Dmirror.exit(withError: error)
}
