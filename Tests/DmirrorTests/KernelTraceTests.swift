import Foundation
import Testing
@testable import Harness
@testable import Suite
#if canImport(Glibc)
import Glibc
#endif

/// The simulator against the real driver, without a VM: Tests/KernelTraces/<cell>
/// holds the command traces the lab recorded in one cell (a kernel release, a THP
/// mode, TEST_HMM m or y, a guest profile): every ioctl's errno, cpages, faults,
/// snapshot bytes and a digest of the data read back. Configured as the cell's
/// kernel (`--sim-release`, `--sim-thp`), the simulator must reproduce every trace
/// line for line, except in the cases cell.json names as the kernel's own findings
/// there (it fails them in both suites, or they crash it): those the simulator does
/// not imitate.
///
/// `scripts/lab run --cell NAME --record-traces` rewrites a cell's folder.
@Suite("Simulator vs the traces the lab recorded in each cell")
struct KernelTraceTests {
    /// What cell.json says about a cell.
    struct Cell: CustomTestStringConvertible, Sendable {
        let name: String
        let directory: String
        let release: String
        let thp: String
        /// Case name → why the kernel is the one that is wrong there.
        let findings: [String: String]

        var testDescription: String { name }
    }

    /// <package>/Tests/KernelTraces, found from this source file.
    static let root: String = {
        let tests = "\(#filePath)".split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/KernelTraces"
    }()

    /// Every folder with a cell.json; a folder without one is a mistake, not a cell to skip.
    static let cells: [Cell] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.sorted().map { name in
            let directory = root + "/" + name
            guard let data = FileManager.default.contents(atPath: directory + "/cell.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let release = json["release"] as? String, let thp = json["thp"] as? String
            else {
                return Cell(name: name, directory: directory, release: "", thp: "", findings: [:])
            }
            let findings = (json["findings"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
            return Cell(name: name, directory: directory, release: release, thp: thp, findings: findings)
        }
    }()

    @Test("the recorded cells include the lab's default one and every kernel of the matrix")
    func cellsPresent() {
        let names = Set(Self.cells.map(\.name))
        for expected in ["7.3-madvise", "7.3-always", "7.3-never", "7.3-builtin", "7.3-mmci", "6.12-madvise", "6.1-madvise"] {
            #expect(names.contains(expected), "Tests/KernelTraces/\(expected) is missing")
        }
    }

    @Test("every deterministic case's trace equals the kernel's in its cell, command by command", arguments: cells)
    func simulatorMatchesKernel(cell: Cell) throws {
        try #require(!cell.release.isEmpty, "\(cell.directory)/cell.json is missing or has no release/thp")
        let recorded = try FileManager.default.contentsOfDirectory(atPath: cell.directory)
            .filter { $0.hasSuffix(".trace") }.map { String($0.dropLast(".trace".count)) }
        try #require(recorded.count > 50, "\(cell.name): only \(recorded.count) traces")

        let scratch = try TraceScratch()
        defer { scratch.remove() }
        // The simulator digests data as the cell's traces do (v1 cells: fnv1a64).
        let header = try #require(String(contentsOfFile: cell.directory + "/" + recorded[0] + ".trace", encoding: .utf8)
            .split(separator: "\n").first.map(String.init))
        let digest = try #require(CommandTrace.version(ofHeader: header).flatMap(TraceDigest.init(version:)),
                                  "\(cell.name): \(header) names no known trace version")
        // The benchmark is not recorded (the lab runs it only with --bench).
        let run = try runDmirror(["run", "--backend", "sim", "--sim-release", cell.release, "--sim-thp", cell.thp,
                                  "--trace", scratch.path, "--trace-digest", digest.rawValue, "-T", "benchmark_thp_migration"])
        #expect(run.stdoutLines.contains { $0.hasPrefix("# Totals:") }, "\(run.stderr)")

        let compared = try runDmirror(["compare-traces", cell.directory, scratch.path])
        var same = 0
        for line in compared.stdoutLines where !line.hasPrefix("#") && !line.hasPrefix(" ") {
            guard let colon = line.range(of: ": ") else { continue }
            let name = String(line[..<colon.lowerBound])
            let verdict = line[colon.upperBound...]
            switch verdict {
            case "same":
                same += 1
            case _ where verdict.hasPrefix("nondeterministic"):
                // Only anon_teardown (a munmap racing a READ) is exempt.
                #expect(name.hasSuffix(".anon_teardown"), "\(cell.name): \(line)")
            case "missing in A":
                // The kernel has no trace of a case it crashed on; that must be a finding.
                #expect(cell.findings[name] != nil, "\(cell.name): \(name) has no kernel trace and is no finding")
            default:
                #expect(cell.findings[name] != nil,
                        "\(cell.name): \(line)\n\(compared.stdout.components(separatedBy: "\n").filter { $0.contains(name) || $0.hasPrefix("  ") }.prefix(6).joined(separator: "\n"))")
            }
        }
        // Every recorded trace was compared: those of findings may differ, the others are the same.
        let expectedSame = recorded.filter { cell.findings[$0] == nil && !$0.hasSuffix(".anon_teardown") }.count
        #expect(same >= expectedSame, "\(cell.name): \(same) same of \(expectedSame) expected\n\(compared.stdout)")
    }
}
