import ArgumentParser
import DmirrorDevice
import DmirrorSuite
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror compare-traces A B`: the command traces of two runs (`run --trace`), case by case.
struct CompareTraces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-traces",
        abstract: "Compare two directories of command traces (dmirror run --trace DIR), case by case.",
        discussion: """
            Prints one line per case: same, differs (with the first differing line of each side, \
            numbered as in its file), missing in A or B, nondeterministic (not compared) or ignored. \
            Lines starting with # are not compared. Exit status: 0 if every case both directories \
            have is the same, 1 otherwise (--fail-on-missing: also 1 if a case is in only one). Example (kernel run in the guest, simulator on the host): \
            dmirror compare-traces kernel-traces sim-traces
            """
    )

    @Argument(help: "The first trace directory (e.g. the real kernel's).")
    var a: String

    @Argument(help: "The second trace directory (e.g. the simulator's).")
    var b: String

    @Option(help: ArgumentHelp("Leave a case out (fixture.variant.test, or a test name for every variant).",
                               valueName: "case"))
    var ignore: [String] = []

    @Flag(name: .customLong("fail-on-missing"), help: "Also fail when a case has a trace in only one directory.")
    var failOnMissing = false

    @Option(help: "text (one line per case) or json (one document, for the lab).")
    var format: ReportFormat = .text

    func run() throws {
        let entries: [TraceComparison.Entry]
        do {
            entries = try TraceComparison.compare(a, b, ignoring: Set(ignore))
        } catch {
            FileHandleLite.standardError("dmirror: compare-traces: \(error)")
            throw ExitCode(KSFTExitCode.usage)
        }
        if entries.isEmpty {
            FileHandleLite.standardError("dmirror: compare-traces: no *.trace files in \(a) or \(b)")
            throw ExitCode(KSFTExitCode.usage)
        }
        let report = TraceComparison.report(entries, failOnMissing: failOnMissing)
        switch format {
        case .text: print(report.lines.joined(separator: "\n"))
        case .json: print(TraceComparison.json(entries, a: a, b: b, exitCode: report.exitCode))
        }
        throw ExitCode(report.exitCode)
    }
}

enum ReportFormat: String, CaseIterable, ExpressibleByArgument {
    case text
    case json
}

/// The directory `run --trace` writes into.
enum TraceDirectory {
    /// mkdir -p `path`; nil on success, else what went wrong.
    static func prepare(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                return Errno.current.description
            }
            prefix += "/"
        }
        var info = stat()
        guard stat(path, &info) == 0 else { return Errno.current.description }
        guard info.st_mode & S_IFMT == S_IFDIR else { return "not a directory" }
        return nil
    }
}
