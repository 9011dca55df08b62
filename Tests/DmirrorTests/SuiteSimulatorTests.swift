#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DmirrorSuite

/// The ported suite, each case isolated in its own `dmirror` process, as
/// `dmirror run -r <case>` runs it.
///
/// benchmark_thp_migration is slow; it runs only with DMIRROR_BENCH=1.
@Suite("Suite")
struct SuiteTests {
    static let benchmarksEnabled = getenv("DMIRROR_BENCH").map { String(cString: $0) == "1" } ?? false

    /// Every case name: the 78 of hmm-tests, then dmirror's extras.
    static let allNames: [String] = (HMMSuite.cases + HMMSuite.extraCases)
        .filter { benchmarksEnabled || !$0.test.isBenchmark }
        .map(\.name)

    /// Runs one case through the CLI and returns its TAP output.
    static func run(_ name: String, backend: String) throws -> ProcessOutput {
        try runDmirror(["run", "--backend", backend, "--extra", "-r", name])
    }

    @Test("On the simulator every case passes (no SKIP, no not ok)", arguments: allNames)
    func simulator(_ name: String) throws {
        let result = try Self.run(name, backend: "sim")
        let line = result.stdoutLines.first { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        #expect(line == "ok 1 \(name)", "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
        #expect(result.status == 0)
    }

    @Test("On the real test_hmm driver every case passes or skips as the kernel decides",
          .enabled(if: DmirrorExecutable.kernelDriverAvailable, "/dev/hmm_dmirror0 is not available (load test_hmm)"),
          arguments: allNames)
    func kernel(_ name: String) throws {
        let result = try Self.run(name, backend: "kernel")
        let line = result.stdoutLines.first { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        #expect(line?.hasPrefix("ok 1 \(name)") == true, "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
        #expect(result.status == 0)
    }
}
