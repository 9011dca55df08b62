import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

// A case process spawned by `dmirror run` (the hot path: no argument-parser).
if let invocation = CaseInvocation(arguments: CommandLine.arguments) {
    invocation.runAndExit()
}

// The entry point: argument-parser's, except that a usage error exits 1 as
// kselftest's harness does (argument-parser's own code for it is 64).
do {
    var command = try Dmirror.parseAsRoot()
    try command.run()
} catch {
    let code = Dmirror.exitCode(for: error)
    if code == .validationFailure {
        FileHandleLite.standardError(Dmirror.fullMessage(for: error))
        exit(KSFTExitCode.usage)
    }
    Dmirror.exit(withError: error)
}
