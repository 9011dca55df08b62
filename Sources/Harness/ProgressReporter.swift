import Syscalls
import SystemPackage

/// Wraps a reporter and, when the report goes somewhere other than a terminal,
/// tells a waiting person on stderr how far the run is: on a terminal one line
/// rewritten after each case, elsewhere (a CI log) one line every `interval`.
public final class ProgressReporter: SuiteReporter {
    let inner: SuiteReporter
    let onTerminal: Bool
    let interval: UInt64
    private var total = 0
    private var done = 0
    private var started: UInt64 = 0
    private var lastLine: UInt64 = 0

    /// `onTerminal`: stderr is a terminal. `interval`: nanoseconds between lines elsewhere.
    public init(_ inner: SuiteReporter, onTerminal: Bool, interval: UInt64 = 15_000_000_000) {
        self.inner = inner
        self.onTerminal = onTerminal
        self.interval = interval
    }

    /// `reporter` itself when stdout is a terminal (the report shows the progress), else wrapped.
    public static func wrapping(_ reporter: SuiteReporter) -> SuiteReporter {
        guard !Sys.isTerminal(.standardOutput) else { return reporter }
        return ProgressReporter(reporter, onTerminal: Sys.isTerminal(.standardError))
    }

    public func runStarted(backend: BackendInfo, plan: RunPlan) {
        total = plan.cases.count
        started = Sys.monotonicNanoseconds()
        lastLine = started
        inner.runStarted(backend: backend, plan: plan)
    }

    public func caseStarted(_ number: Int, _ testCase: TestCase) { inner.caseStarted(number, testCase) }

    public func caseFinished(_ number: Int, _ result: CaseResult) {
        inner.caseFinished(number, result)
        done += 1
        let now = Sys.monotonicNanoseconds()
        let seconds = (now - started) / 1_000_000_000
        if onTerminal {
            write("\r\u{1B}[Kdmirror: \(done)/\(total) cases, \(seconds) s")
        } else if now - lastLine >= interval && done < total {
            lastLine = now
            write("dmirror: \(done)/\(total) cases, \(seconds) s\n")
        }
    }

    public func runFinished(_ results: [CaseResult], totals: RunTotals) {
        if onTerminal { write("\r\u{1B}[K") }
        inner.runFinished(results, totals: totals)
    }

    public var capturesOutput: Bool { inner.capturesOutput }
    public func caseOutput(_ number: Int, _ result: CaseResult) { inner.caseOutput(number, result) }
    public var replayCapture: OutputCapture { inner.replayCapture }
    public var sink: ReportSink { inner.sink }

    /// Progress is a courtesy: a stderr that cannot take it costs nothing.
    private func write(_ text: String) { try? Sys.writeAll(.standardError, text) }
}
