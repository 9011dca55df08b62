import ArgumentParser
import Harness

// argument-parser's entry point, except that a usage error exits 1 as
// kselftest's harness does (argument-parser's own code for it is 64).
do {
    var command = try Dmirror.parseAsRoot()
    try command.run()
} catch {
    // A usage error is one line (what is wrong, and where the help is) and exit 1.
    if Dmirror.exitCode(for: error) == .validationFailure {
        let names = Dmirror.configuration.subcommands.map { $0._commandName }
        let command = CommandLine.arguments.dropFirst().first { names.contains($0) }.map { "dmirror \($0)" } ?? "dmirror"
        StandardError.line("dmirror: \(Dmirror.message(for: error)) (\(command) --help shows the options)")
        Dmirror.exit(withError: ExitCode(KSFTExit.fail))
    }
    Dmirror.exit(withError: error)
}
