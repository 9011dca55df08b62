import DmirrorMachine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// test_harness_run(): the header, each enabled case in order (isolated by
/// the launcher), the summary. Returns the totals; `totals.exitCode` is the
/// process's exit status (0 if nothing failed, even if all skipped; 1 otherwise).
///
/// With `jobs` > 1, up to that many cases run at once (worker threads take the
/// cases in plan order), each with its output captured; the reporter still
/// sees every case in plan order: `caseStarted` when the case is next in
/// order, then (for a reporter that does not capture) `caseOutput` with what
/// the case wrote, then `caseFinished`, as soon as that case has ended. The
/// report is the sequential one, byte for byte.
public struct SuiteRunner {
    /// Runs one case; the capture says what to do with its output. Called from
    /// worker threads when `jobs` > 1.
    public var launch: @Sendable (SuiteCase, OutputCapture) -> CaseResult
    public var reporter: SuiteReporter
    /// How many cases may run at once (1: one after the other, output not captured for TAP).
    public var jobs: Int

    public init(reporter: SuiteReporter, jobs: Int = 1, launch: @escaping @Sendable (SuiteCase, OutputCapture) -> CaseResult) {
        self.reporter = reporter
        self.jobs = jobs
        self.launch = launch
    }

    /// Runs each case in its own process through `launcher`.
    public init(reporter: SuiteReporter, jobs: Int = 1, launcher: IsolatedCaseLauncher) {
        self.init(reporter: reporter, jobs: jobs) { launcher.run($0, capture: $1) }
    }

    /// The worker count a run uses: `jobs`, at most one per case and at most
    /// `IsolatedCaseLauncher.maximumConcurrentCases`.
    func workerCount(for plan: RunPlan) -> Int {
        min(max(jobs, 1), plan.cases.count, IsolatedCaseLauncher.maximumConcurrentCases)
    }

    @discardableResult
    public func run(_ plan: RunPlan, backend: BackendInfo) -> RunTotals {
        reporter.runStarted(backend: backend, plan: plan)
        let workers = workerCount(for: plan)
        let results = workers > 1 ? runConcurrently(plan, workers: workers) : runSequentially(plan)
        reporter.runFinished(results, totals: RunTotals(results))
        return RunTotals(results)
    }

    private func runSequentially(_ plan: RunPlan) -> [CaseResult] {
        var results: [CaseResult] = []
        let capture: OutputCapture = reporter.capturesOutput ? .merged : .inherit
        for (index, suiteCase) in plan.cases.enumerated() {
            reporter.caseStarted(index + 1, suiteCase)
            let result = launch(suiteCase, capture)
            results.append(result)
            reporter.caseFinished(index + 1, result)
        }
        return results
    }

    private func runConcurrently(_ plan: RunPlan, workers: Int) -> [CaseResult] {
        let capture: OutputCapture = reporter.capturesOutput ? .merged : reporter.replayCapture
        let queue = CaseQueue(plan.cases)
        let launch = self.launch
        let work: @Sendable () -> Void = {
            while let (index, suiteCase) = queue.next() {
                queue.finish(index, launch(suiteCase, capture))
            }
        }
        var threads: [HostThread] = []
        for _ in 0..<workers {
            guard let thread = try? HostThread(work) else { break }
            threads.append(thread)
        }
        // No thread at all: this one does the work (in order, so nothing waits on itself).
        if threads.isEmpty { work() }

        var results: [CaseResult] = []
        for (index, suiteCase) in plan.cases.enumerated() {
            reporter.caseStarted(index + 1, suiteCase)
            let result = queue.wait(for: index)
            if !reporter.capturesOutput { reporter.caseOutput(index + 1, result) }
            results.append(result)
            reporter.caseFinished(index + 1, result)
        }
        for thread in threads { thread.join() }
        return results
    }
}

/// The cases of a concurrent run: handed out in plan order, their results
/// collected by position; the reporting thread waits for each in turn.
final class CaseQueue: @unchecked Sendable {
    private let cases: [SuiteCase]
    private let state: Mutex<(next: Int, results: [CaseResult?])>
    /// Posted once per finished case. @unchecked Sendable: sem_t is thread-safe, and
    /// lives (allocated once) as long as the queue.
    private let finished: UnsafeMutablePointer<sem_t>

    init(_ cases: [SuiteCase]) {
        self.cases = cases
        state = Mutex((0, Array(repeating: nil, count: cases.count)))
        finished = .allocate(capacity: 1)
        sem_init(finished, 0, 0)
    }

    deinit {
        sem_destroy(finished)
        finished.deallocate()
    }

    /// The next case to run and its position, or nil when all are taken.
    func next() -> (Int, SuiteCase)? {
        state.withLock { state in
            guard state.next < cases.count else { return nil }
            defer { state.next += 1 }
            return (state.next, cases[state.next])
        }
    }

    func finish(_ index: Int, _ result: CaseResult) {
        state.withLock { $0.results[index] = result }
        sem_post(finished)
    }

    /// Blocks until case `index` has finished; its result.
    func wait(for index: Int) -> CaseResult {
        while true {
            if let result = state.withLock({ $0.results[index] }) { return result }
            while sem_wait(finished) != 0 && errno == EINTR {}
        }
    }
}
