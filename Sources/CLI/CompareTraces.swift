import ArgumentParser
import ABI
import Harness
import Syscalls

/// `dmirror compare-traces A B`: the command traces of two runs (`run --trace`), case by case.
struct CompareTraces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-traces",
        abstract: "Compare two directories of command traces (dmirror run --trace DIR), case by case.",
        discussion: """
            Prints one line per case: same, differs (with the first differing line of each side, \
            numbered as in its file), missing in A or B, nondeterministic (not compared) or ignored. \
            Lines starting with # are not compared. Exit status: 0 if every case both directories \
            have is the same, 1 otherwise (--fail-on-missing: also 1 if a case is in only one; a directory \
            with no trace, or a file that is not a trace, is 1 too). \
            Example (kernel run in the guest, simulator on the host): \
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
            throw refuse("compare-traces: \(error)", exit: KSFTExit.fail)
        }
        let report = TraceComparison.report(entries, failOnMissing: failOnMissing)
        let text = switch format {
        case .text: report.lines.joined(separator: "\n")
        case .json: TraceComparison.json(entries, a: a, b: b, failOnMissing: failOnMissing)
        }
        try Output.write(text, for: "compare-traces")
        throw ExitCode(report.exitCode)
    }
}

enum ReportFormat: String, CaseIterable, ExpressibleByArgument {
    case text
    case json
}
