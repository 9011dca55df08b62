import ArgumentParser
import CDmirror
#if canImport(Glibc)
import Glibc
#endif

// A case process spawned by `dmirror run` (the hot path: no argument-parser).
if let invocation = CaseInvocation(arguments: CommandLine.arguments) {
    // A case allocates and frees buffers of megabytes over and over (mirrors,
    // CPU loads); glibc would hand each back to the host and fault it in
    // again. Keeping freed memory in the heap roughly halves the host page
    // faults of a simulated case; the driver never sees the difference.
    _ = dmirror_shim_mallopt(dmirror_shim_M_MMAP_THRESHOLD, 1 << 30)
    _ = dmirror_shim_mallopt(dmirror_shim_M_TRIM_THRESHOLD, 1 << 30)
    _ = dmirror_shim_mallopt(dmirror_shim_M_TOP_PAD, 64 << 20)
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
