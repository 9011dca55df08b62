import ABI
import MachineInterface
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// test_harness_run(): the header, each enabled case in order (each in its own
/// process, see `CaseLauncher`), the summary. Returns the totals;
/// `totals.exitCode` is the process's exit status (0 if nothing failed, even
/// if all skipped; 1 otherwise).
///
/// With `jobs` > 1, up to that many case processes run at once, each with its
/// output captured; the reporter still sees every case in plan order:
/// `caseStarted`, then (for a reporter that does not capture) `caseOutput`
/// with what the case wrote, then `caseFinished`. The report is the
/// sequential one, byte for byte. One thread does all of it: it forks the
/// cases and polls their pidfds and pipes.
public struct SuiteRunner {
    public var launcher: CaseLauncher
    public var reporter: SuiteReporter
    /// How many cases may run at once (1: one after the other, output not captured for TAP).
    public var jobs: Int
    /// Markers in the kernel log around each case (the lab's attribution of splats).
    public var markers: KmsgMarkers?

    public init(launcher: CaseLauncher, reporter: SuiteReporter, jobs: Int = 1, markers: KmsgMarkers? = nil) {
        self.launcher = launcher
        self.reporter = reporter
        self.jobs = jobs
        self.markers = markers
    }

    /// The worker count a run uses: `jobs`, at most one per case and at most
    /// `CaseLauncher.maximumConcurrentCases`.
    func workerCount(for plan: RunPlan) -> Int {
        min(max(jobs, 1), plan.cases.count, CaseLauncher.maximumConcurrentCases)
    }

    @discardableResult
    public func run(_ plan: RunPlan, backend: BackendInfo) -> RunTotals {
        reporter.runStarted(backend: backend, plan: plan)
        let workers = workerCount(for: plan)
        let capture: OutputCapture = reporter.capturesOutput ? .merged : (workers > 1 ? reporter.replayCapture : .inherit)
        var loop = LaunchLoop(launcher: launcher, cases: plan.cases, workers: workers, capture: capture, markers: markers)
        var results: [CaseResult] = []
        var reported = 0
        // Sequential, uncaptured: the RUN line must come before the case writes.
        let announceFirst = capture == .inherit
        loop.run(
            willLaunch: { index in if announceFirst { reporter.caseStarted(index + 1, plan.cases[index]) } },
            finished: { finished in
                // Report every case whose predecessors are all done, in plan order.
                while reported < finished.count, let result = finished[reported] {
                    if !announceFirst { reporter.caseStarted(reported + 1, plan.cases[reported]) }
                    if capture != .inherit && !reporter.capturesOutput { reporter.caseOutput(reported + 1, result) }
                    reporter.caseFinished(reported + 1, result)
                    results.append(result)
                    reported += 1
                }
            })
        let totals = RunTotals(results)
        reporter.runFinished(results, totals: totals)
        return totals
    }
}

/// The fork-and-poll loop behind `SuiteRunner`.
struct LaunchLoop {
    let launcher: CaseLauncher
    let cases: [TestCase]
    let workers: Int
    let capture: OutputCapture
    let markers: KmsgMarkers?

    /// One case process the loop waits for.
    final class Running {
        let index: Int
        let pid: pid_t
        let slot: Int?
        /// Readable once the process has exited; nil where pidfd_open is missing (then waitpid polls).
        let pidfd: FileDescriptor?
        var verdict: FileDescriptor?
        var streams: [(fd: FileDescriptor, stream: Int32)]
        var chunks: [OutputChunk] = []
        var verdictBytes: [UInt8] = []
        let started: UInt64
        let deadline: UInt64
        var timedOut = false
        var status: ExitStatus?

        init(index: Int, pid: pid_t, slot: Int?, pidfd: FileDescriptor?, verdict: FileDescriptor,
             streams: [(FileDescriptor, Int32)], started: UInt64, deadline: UInt64) {
            self.index = index
            self.pid = pid
            self.slot = slot
            self.pidfd = pidfd
            self.verdict = verdict
            self.streams = streams.map { (fd: $0.0, stream: $0.1) }
            self.started = started
            self.deadline = deadline
        }

        func append(_ bytes: some Collection<UInt8>, stream: Int32) {
            guard !bytes.isEmpty else { return }
            if chunks.last?.stream == stream {
                chunks[chunks.count - 1].bytes.append(contentsOf: bytes)
            } else {
                chunks.append(OutputChunk(stream: stream, bytes: Array(bytes)))
            }
        }
    }

    mutating func run(willLaunch: (Int) -> Void, finished report: ([CaseResult?]) -> Void) {
        var results = [CaseResult?](repeating: nil, count: cases.count)
        var running: [Running] = []
        var next = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { buffer.deallocate() }

        while next < cases.count || !running.isEmpty {
            while running.count < workers && next < cases.count {
                willLaunch(next)
                markers?.begin(cases[next].name)
                switch launch(next, foreign: running) {
                case .success(let child): running.append(child)
                case .failure(let error):
                    results[next] = spawnFailure(cases[next], error)
                    markers?.end(cases[next].name, status: nil)
                    report(results)
                }
                next += 1
            }
            guard !running.isEmpty else { continue }

            // Wait for output, a verdict, an exit, or the nearest deadline.
            var fds: [pollfd] = []
            var owners: [(Running, Int32)] = []  // (case, stream: 0 the pidfd, -1 the verdict, else 1/2)
            for child in running {
                if let pidfd = child.pidfd, child.status == nil {
                    fds.append(pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)); owners.append((child, 0))
                }
                if let verdict = child.verdict {
                    fds.append(pollfd(fd: verdict.rawValue, events: Int16(POLLIN), revents: 0)); owners.append((child, -1))
                }
                for open in child.streams {
                    fds.append(pollfd(fd: open.fd.rawValue, events: Int16(POLLIN), revents: 0)); owners.append((child, open.stream))
                }
            }
            let now = Sys.monotonicNanoseconds()
            var wait = Int64.max
            for child in running where !child.timedOut { wait = min(wait, Int64(child.deadline) - Int64(now)) }
            if running.contains(where: { $0.pidfd == nil }) { wait = min(wait, 10_000_000) }
            let milliseconds = wait == Int64.max ? -1 : Int32(clamping: max(1, (wait + 999_999) / 1_000_000))
            _ = try? Sys.poll(&fds, timeoutMilliseconds: milliseconds)

            for (k, entry) in fds.enumerated() where entry.revents != 0 {
                let (child, what) = owners[k]
                let fd = FileDescriptor(rawValue: entry.fd)
                switch what {
                case 0: reap(child)
                case -1:
                    if !read(fd, into: buffer, then: { child.verdictBytes += $0 }) {
                        try? Sys.close(fd)
                        child.verdict = nil
                    }
                default:
                    if !read(fd, into: buffer, then: { child.append($0, stream: what) }) {
                        try? Sys.close(fd)
                        child.streams.removeAll { $0.fd == fd }
                    }
                }
            }

            let later = Sys.monotonicNanoseconds()
            for child in running {
                if child.pidfd == nil && child.status == nil, let status = try? Sys.poll(child.pid) {
                    child.status = status
                }
                if child.status == nil && !child.timedOut && later >= child.deadline {
                    child.timedOut = true
                    try? Sys.kill(-child.pid, .kill)
                }
            }
            for child in running where child.status != nil {
                results[child.index] = finish(child, buffer)
                markers?.end(cases[child.index].name, status: results[child.index].map { $0.verdict })
            }
            let before = running.count
            running.removeAll { $0.status != nil }
            if running.count != before { report(results) }
        }
    }

    /// Reads what `fd` has once; false at end of file or error.
    private func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer,
                      then use: (UnsafeMutableRawBufferPointer.SubSequence) -> Void) -> Bool {
        guard let n = try? Sys.read(fd, into: buffer), n > 0 else { return false }
        use(buffer[0..<n])
        return true
    }

    /// The pidfd said the process exited: reap it (its group is killed first, so nothing outlives it).
    private func reap(_ child: Running) {
        try? Sys.kill(-child.pid, .kill)
        if let status = try? Sys.wait(child.pid) { child.status = status }
    }

    /// Forks case `index`.
    private func launch(_ index: Int, foreign: [Running]) -> Result<Running, Errno> {
        let testCase = cases[index]
        do throws(Errno) {
            let verdict = try Sys.pipe()
            var output: (read: FileDescriptor, write: FileDescriptor)?
            var errors: (read: FileDescriptor, write: FileDescriptor)?
            if capture != .inherit { output = try Sys.pipe() }
            if capture == .separate { errors = try Sys.pipe() }
            var others: [FileDescriptor] = [verdict.read]
            for child in foreign {
                others += [child.pidfd, child.verdict].compactMap { $0 } + child.streams.map(\.fd)
            }
            if let output { others.append(output.read) }
            if let errors { others.append(errors.read) }
            let ends = CaseLauncher.ChildEnds(verdict: verdict.write, stdout: output?.write,
                                              stderr: capture == .merged ? output?.write : errors?.write, foreign: others)
            Sys.flushStandardStreams()
            let pid = try Sys.fork()
            if pid == 0 { launcher.childMain(testCase, ends) }
            let slot = CaseLauncher.track(pid)
            for end in [verdict.write, output?.write, errors?.write].compactMap({ $0 }) { try? Sys.close(end) }
            let pidfd = try? Sys.pidfdOpen(pid)
            var streams: [(FileDescriptor, Int32)] = []
            if let output { streams.append((output.read, 1)) }
            if let errors { streams.append((errors.read, 2)) }
            let now = Sys.monotonicNanoseconds()
            return .success(Running(index: index, pid: pid, slot: slot, pidfd: pidfd, verdict: verdict.read,
                                    streams: streams, started: now, deadline: now + launcher.timeout(of: testCase)))
        } catch {
            return .failure(error)
        }
    }

    /// The case ended (or was killed): drain its pipes and make its result.
    private func finish(_ child: Running, _ buffer: UnsafeMutableRawBufferPointer) -> CaseResult {
        try? Sys.kill(-child.pid, .kill)
        CaseLauncher.untrack(child.slot)
        // Whatever is still in the pipes; non-blocking, as a stray process outside the group could hold them open.
        for open in child.streams {
            _ = try? Sys.fcntl(open.fd, F_SETFL, O_NONBLOCK)
            while read(open.fd, into: buffer, then: { child.append($0, stream: open.stream) }) {}
            try? Sys.close(open.fd)
        }
        if let verdict = child.verdict {
            _ = try? Sys.fcntl(verdict, F_SETFL, O_NONBLOCK)
            while read(verdict, into: buffer, then: { child.verdictBytes += $0 }) {}
            try? Sys.close(verdict)
        }
        if let pidfd = child.pidfd { try? Sys.close(pidfd) }
        let testCase = cases[child.index]
        let elapsed = Double(Sys.monotonicNanoseconds() - child.started) / 1e9
        return CaseResult.of(testCase, status: child.timedOut ? nil : child.status,
                             reported: VerdictChannel.decode(String(decoding: child.verdictBytes, as: UTF8.self)),
                             duration: elapsed, chunks: child.chunks, captured: capture != .inherit)
    }

    private func spawnFailure(_ testCase: TestCase, _ error: Errno) -> CaseResult {
        var result = CaseResult(name: testCase.name.description, testName: testCase.name.test, verdict: .fail)
        let line = "# ERROR SPAWNING TEST CHILD (fork: \(error.named))"
        result.failureReason = line.dropFirst(2).description
        result.diagnostics = [line]
        if capture != .inherit { result.output = line + "\n" }
        return result
    }
}
