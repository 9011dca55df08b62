#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Harness
@testable import Suite

/// The ported suite, each case isolated in its own `dmirror` process, as
/// `dmirror run -r <case>` runs it.
///
/// benchmark_thp_migration is slow; it runs only with DMIRROR_BENCH=1.
@Suite("Suite")
struct SuiteTests {
    static let benchmarksEnabled = getenv("DMIRROR_BENCH").map { String(cString: $0) == "1" } ?? false

    /// Every case name: the 78 of hmm-tests, then dmirror's extras.
    static let allNames: [String] = (HMMSuite.cases + HMMSuite.extraCases)
        .filter { benchmarksEnabled || !$0.isBenchmark }
        .map(\.name.description)

    /// Runs one case through the CLI and returns its TAP output.
    static func run(_ name: String, backend: String) throws -> ProcessOutput {
        try runDmirror(["run", "--backend", backend, "--extra", "-r", name])
    }

    /// Every case passes on the simulator, without SKIP, except where Linux 7.3
    /// itself fails the C assertion (`HMMSuite.kernelFindings`): there the
    /// simulator must fail the same way, at the same assertion.
    @Test("On the simulator every case gives the kernel's verdict (no SKIP)", arguments: allNames)
    func simulator(_ name: String) throws {
        let result = try Self.run(name, backend: "sim")
        let line = result.stdoutLines.first { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        let context: Comment = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)"
        if let finding = HMMSuite.kernelFinding(for: name) {
            #expect(line == "not ok 1 \(name)", context)
            #expect(result.stderr.contains(finding.assertion), context)
            #expect(result.status == 1)
        } else {
            #expect(line == "ok 1 \(name)", context)
            #expect(result.status == 0)
        }
    }

    @Test("On the real test_hmm driver every case passes or skips as the kernel decides",
          .enabled(if: DmirrorExecutable.kernelDriverAvailable, "/dev/hmm_dmirror0 is not available (load test_hmm)"),
          arguments: allNames)
    func kernel(_ name: String) throws {
        let result = try Self.run(name, backend: "kernel")
        let line = result.stdoutLines.first { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        let context: Comment = "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)"
        if HMMSuite.kernelFinding(for: name) != nil {
            // A kernel finding: whatever this kernel answers, the lab compares it with the C suite.
            #expect(line != nil, context)
        } else {
            #expect(line?.hasPrefix("ok 1 \(name)") == true, context)
            #expect(result.status == 0)
        }
    }
}
