import Testing
@testable import Harness
@testable import Suite
#if canImport(Glibc)
import Glibc
#endif

/// The simulator against the real driver, without a VM: Tests/KernelTraces
/// holds the command traces the lab recorded on Linux 7.3 (every ioctl's
/// errno, cpages, faults, snapshot bytes and a digest of the data read back).
/// The simulator must reproduce them line for line.
///
/// To refresh them after a kernel or suite change, run the lab and copy
/// `<out>/guest/results/dmirror-traces/*.trace` over the folder.
@Suite("Simulator vs recorded Linux 7.3 traces")
struct KernelTraceTests {
    /// <package>/Tests/KernelTraces/linux-7.3.4, found from this source file.
    static let recorded: String = {
        let tests = "\(#filePath)".split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/KernelTraces/linux-7.3.4"
    }()

    @Test("every deterministic case's trace equals the kernel's, command by command")
    func simulatorMatchesKernel() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        // The benchmark was not recorded (the lab runs it only with --bench).
        let run = try runDmirror(["run", "--backend", "sim", "--abi", "7.3", "--trace", scratch.path,
                                  "-T", "benchmark_thp_migration"])
        #expect(run.stdoutLines.contains { $0.hasPrefix("# Totals:") })

        let compared = try runDmirror(["compare-traces", Self.recorded, scratch.path, "--fail-on-missing"])
        let lines = compared.stdoutLines
        #expect(compared.status == 0, "compare-traces:\n\(compared.stdout)\(compared.stderr)")
        #expect(lines.filter { $0.hasSuffix(": same") }.count == 74, "\(compared.stdout)")
        #expect(!lines.contains { $0.contains(": differs") }, "\(compared.stdout)")
        // Only anon_teardown (a munmap racing a READ) is exempt, in both variants.
        let exempt = lines.filter { !$0.hasPrefix("#") && $0.contains("nondeterministic") }
        #expect(exempt.count == 2 && exempt.allSatisfy { $0.contains(".anon_teardown") }, "\(exempt)")
    }
}
