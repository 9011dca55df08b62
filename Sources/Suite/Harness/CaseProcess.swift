import DmirrorMachine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a case process tells the harness how it ended, besides its exit status:
/// one line on a dedicated pipe, `<kind>\t<text>`, kind being pass, fail,
/// assert or skip. The exit status (0, 1, 4) stays the authority; the line
/// adds the SKIP reason and whether an ASSERT stopped the case.
public enum VerdictChannel {
    /// The descriptor the child finds its end of the pipe on.
    public static let childDescriptor: Int32 = 3

    /// The line for `outcome` (newline-terminated).
    public static func encode(_ outcome: CaseOutcome) -> String {
        func clean(_ text: String) -> String {
            String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
        }
        switch outcome {
        case .passed: return "pass\t\n"
        case .expectationFailed: return "fail\t\n"
        case .assertionFailed(let message): return "assert\t\(clean(message))\n"
        case .skipped(let reason): return "skip\t\(clean(reason))\n"
        }
    }

    /// The outcome a channel's text reports (its last complete line), or nil.
    public static func decode(_ text: String) -> CaseOutcome? {
        guard let line = text.split(separator: "\n").last else { return nil }
        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
        let payload = parts.count > 1 ? String(parts[1]) : ""
        switch parts[0] {
        case "pass": return .passed
        case "fail": return .expectationFailed
        case "assert": return .assertionFailed(payload)
        case "skip": return .skipped(payload)
        default: return nil
        }
    }
}

/// The child's side: run one case in this process, report, exit.
public enum CaseProcessChild {
    /// Runs `suiteCase` on `machine`, writes the verdict line to `verdictDescriptor`
    /// (if any) and exits with the kselftest status (0 pass, 1 fail, 4 skip).
    /// With a `trace` (whose machine `machine` records to), its `end` line is written last.
    public static func runAndExit(_ suiteCase: SuiteCase, on machine: any Machine,
                                  verdictDescriptor: Int32?, trace: CommandTrace? = nil) -> Never {
        // Line-buffered like ksft_print_header(), so a crash loses at most a partial line
        // and stdout stays in order with the unbuffered stderr.
        let standardOutput = cStandardOutput()
        setvbuf(standardOutput, nil, _IOLBF, 0)
        let outcome = CaseExecutor.run(suiteCase, on: machine)
        trace?.finish(outcome)
        fflush(nil)
        if let verdictDescriptor {
            FDWrite.all(verdictDescriptor, VerdictChannel.encode(outcome))
        }
        exit(outcome.exitCode)
    }

    /// C's `stdout` (the FILE Swift's print writes to); Swift 6 will not read the C global directly.
    private static func cStandardOutput() -> UnsafeMutablePointer<FILE>? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "stdout") else { return nil }
        return symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee
    }
}

/// Runs each case in its own process, as kselftest does (principle 4).
///
/// The harness posix_spawn()s an executable (normally dmirror itself, with
/// its hidden `run-case` subcommand) in a new process group, with the
/// verdict pipe on fd 3. It waits up to the case's timeout; on timeout it
/// SIGKILLs the group. A crash or signal is one failed case. The group is
/// SIGKILLed after every case, so nothing a case left behind outlives it.
/// The parent stays free of fork(): it may have threads. `run` may be called
/// from several threads at once (`SuiteRunner` with jobs > 1): each call has
/// its own pipes and waiter, and every running group is known to the
/// interrupt handler.
public struct IsolatedCaseLauncher: Sendable {
    /// The program to spawn.
    public var executable: String
    /// argv[1...] for a case.
    public var arguments: @Sendable (SuiteCase) -> [String]
    /// Overrides every case's timeout (seconds), if set.
    public var timeoutOverride: Double?

    public init(executable: String, timeoutOverride: Double? = nil,
                arguments: @escaping @Sendable (SuiteCase) -> [String]) {
        self.executable = executable
        self.timeoutOverride = timeoutOverride
        self.arguments = arguments
    }

    /// How many case processes the interrupt handler can track at once
    /// (`SuiteRunner` never runs more at a time).
    public static let maximumConcurrentCases = 256

    /// The process groups of the cases running now (0: a free slot), for the
    /// interrupt handler. Fixed slots of atomics: a signal handler may read them,
    /// where it could not take a lock.
    static let runningGroups: InlineArray<256, Atomic<Int32>> = InlineArray { _ in Atomic<Int32>(0) }

    /// Records `group` as running; returns its slot (nil if every slot is taken, which
    /// `SuiteRunner`'s cap on concurrent cases rules out).
    static func track(_ group: Int32) -> Int? {
        for slot in runningGroups.indices
            where runningGroups[slot].compareExchange(expected: 0, desired: group, ordering: .sequentiallyConsistent).exchanged {
            return slot
        }
        return nil
    }

    static func untrack(_ slot: Int?) {
        if let slot { runningGroups[slot].store(0, ordering: .sequentiallyConsistent) }
    }

    /// Whether any case process is being tracked as running (for tests).
    static var anyRunning: Bool {
        runningGroups.indices.contains { runningGroups[$0].load(ordering: .sequentiallyConsistent) != 0 }
    }

    /// Pipe creation and posix_spawn() exclude each other: pipe() makes its ends
    /// without close-on-exec, and a case spawned by another thread in that window
    /// would inherit them (Glibc's Swift module has no pipe2()).
    static let spawnLock = Mutex<Void>(())

    /// Makes SIGINT, SIGTERM, SIGHUP and SIGPIPE kill every running case's process
    /// group before this process dies of the signal: a case lives in its own group,
    /// so the terminal's ^C would not reach it.
    public static func forwardInterrupts() {
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] {
            _ = Glibc.signal(signal) { number in
                for slot in 0..<IsolatedCaseLauncher.maximumConcurrentCases {
                    let group = IsolatedCaseLauncher.runningGroups[slot].load(ordering: .sequentiallyConsistent)
                    if group > 0 { kill(-group, SIGKILL) }
                }
                _ = Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
    }

    /// /proc/self/exe: this program's own executable.
    public static func currentExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `suiteCase` in a child process. With `captureOutput` the child's
    /// stdout and stderr go (merged, in order) into the result's `output`;
    /// otherwise the child writes straight to this process's stdout/stderr.
    public func run(_ suiteCase: SuiteCase, captureOutput: Bool) -> CaseResult {
        run(suiteCase, capture: captureOutput ? .merged : .inherit)
    }

    /// Runs `suiteCase` in a child process, its output captured as `capture` says.
    /// A captured result's `output` ends with the harness's diagnostics about the
    /// case (which `capturedOutput` leaves out: a reporter prints those itself).
    public func run(_ suiteCase: SuiteCase, capture: OutputCapture) -> CaseResult {
        let clock = ContinuousClock()
        let start = clock.now
        let timeout = timeoutOverride ?? Double(suiteCase.test.timeoutSeconds)
        var result = CaseResult(name: suiteCase.name, testName: suiteCase.test.name, verdict: .fail)

        let ended = spawnAndWait(arguments: arguments(suiteCase), timeout: timeout, capture: capture)
        let elapsed = clock.now - start
        result.duration = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        result.output = String(decoding: ended.chunks.flatMap(\.bytes), as: UTF8.self)
        result.capturedOutput = ended.chunks

        let name = suiteCase.test.name
        let reported = VerdictChannel.decode(ended.verdictText)
        var ending: String?
        switch ended.status {
        case .spawnFailed(let error):
            ending = "ERROR SPAWNING TEST CHILD (\(executable): \(error))"
            result.diagnostics.append("# " + ending!)
        case .timedOut:
            ending = TAP.Ending.timeout
        case .exited(KSFTExit.pass):
            result.verdict = .pass
        case .exited(KSFTExit.skip):
            if case .skipped(let reason) = reported {
                result.verdict = .skip(reason)
            } else {
                result.verdict = .skip("unknown")
            }
        case .exited:
            if case .assertionFailed(let message) = reported {
                ending = TAP.Ending.assertion
                result.failureReason = message
            } else {
                ending = TAP.Ending.failed
            }
        case .signaled(let signal):
            ending = signal == SIGABRT ? TAP.Ending.assertion : TAP.Ending.signal(signal)
        }
        if let ending, result.verdict == .fail {
            if case .spawnFailed = ended.status {} else {
                result.diagnostics.append(TAP.diagnostic(name, ending))
            }
            result.failureReason = result.failureReason.map { "\(ending): \($0)" } ?? ending
        }
        if capture != .inherit, !result.diagnostics.isEmpty {
            result.output += result.diagnostics.map { $0 + "\n" }.joined()
        }
        return result
    }

    enum Status: Equatable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut
        case spawnFailed(Int32)
    }

    struct Ended {
        var status: Status
        /// The captured output, consecutive bytes of one stream in one chunk.
        var chunks: [OutputChunk]
        var verdictText: String

        static func spawnFailed(_ error: Int32) -> Ended {
            Ended(status: .spawnFailed(error), chunks: [], verdictText: "")
        }
    }

    private func spawnAndWait(arguments: [String], timeout: Double, capture: OutputCapture) -> Ended {
        // The pipes: the verdict, stdout (or both streams when merged), stderr when separate,
        // and the waiter thread's notification.
        var verdictPipe = Pipe()
        var outputPipe = Pipe()
        var errorPipe = Pipe()
        var notifyPipe = Pipe()
        defer {
            verdictPipe.closeBoth()
            outputPipe.closeBoth()
            errorPipe.closeBoth()
            notifyPipe.closeBoth()
        }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = Self.childEnvironment().map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }

        var pid: pid_t = 0
        let rc: Int32 = Self.spawnLock.withLock { _ in
            guard verdictPipe.open(), notifyPipe.open(),
                  capture == .inherit || outputPipe.open(),
                  capture != .separate || errorPipe.open() else { return errno == 0 ? EMFILE : errno }

            // The child's file descriptors: stdin from /dev/null, the verdict pipe on fd 3,
            // stdout and stderr on the capture pipes.
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, verdictPipe.write, VerdictChannel.childDescriptor)
            switch capture {
            case .inherit: break
            case .merged:
                posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 1)
                posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 2)
            case .separate:
                posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 1)
                posix_spawn_file_actions_adddup2(&actions, errorPipe.write, 2)
            }

            // Its own process group (setpgrp() in the kernel harness), default signal dispositions, no blocked signals.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            posix_spawnattr_setpgroup(&attributes, 0)
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP] { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)

            return posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        }
        guard rc == 0 else { return .spawnFailed(rc) }

        let slot = Self.track(pid)

        // The parent keeps only the read ends.
        verdictPipe.closeWrite()
        outputPipe.closeWrite()
        errorPipe.closeWrite()

        // A thread waits for the child without reaping it (WNOWAIT), so its pid
        // stays ours until the group is killed, then pokes the notify pipe.
        let notifyWrite = notifyPipe.write
        let child = pid
        let waiter: HostThread
        do {
            waiter = try HostThread {
                var info = siginfo_t()
                while waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
                var byte: UInt8 = 1
                _ = write(notifyWrite, &byte, 1)
            }
        } catch {
            kill(-pid, SIGKILL)
            Self.untrack(slot)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return .spawnFailed(error.rawValue)
        }

        // The capture pipes still open, with the stream each carries.
        var streams: [(fd: Int32, stream: Int32)] = []
        if outputPipe.read >= 0 { streams.append((outputPipe.read, 1)) }
        if errorPipe.read >= 0 { streams.append((errorPipe.read, 2)) }
        var chunks: [OutputChunk] = []
        func append(_ bytes: [UInt8], stream: Int32) {
            guard !bytes.isEmpty else { return }
            if chunks.last?.stream == stream {
                chunks[chunks.count - 1].bytes.append(contentsOf: bytes)
            } else {
                chunks.append(OutputChunk(stream: stream, bytes: bytes))
            }
        }

        var timedOut = false
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int64(timeout * 1000))
        var exited = false
        while !exited {
            var fds = [pollfd(fd: notifyPipe.read, events: Int16(POLLIN), revents: 0)]
            for open in streams { fds.append(pollfd(fd: open.fd, events: Int16(POLLIN), revents: 0)) }
            var wait: Int32 = -1
            if !timedOut {
                let left = deadline - clock.now
                let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
                if ms <= 0 {
                    timedOut = true
                    kill(-pid, SIGKILL)
                } else {
                    wait = Int32(clamping: max(ms, 1))
                }
            }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[0].revents != 0 { exited = true }
            var closed: [Int32] = []
            for (index, open) in streams.enumerated() where fds[index + 1].revents != 0 {
                var bytes: [UInt8] = []
                if !Self.readAvailable(open.fd, into: &bytes, once: true) { closed.append(open.fd) }
                append(bytes, stream: open.stream)
            }
            streams.removeAll { closed.contains($0.fd) }
        }

        // Whatever the case left in its group goes with it; then reap (the pid
        // stays unreaped until then, so it cannot be reused while tracked).
        kill(-pid, SIGKILL)
        Self.untrack(slot)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        waiter.join()

        for open in streams {
            var bytes: [UInt8] = []
            _ = fcntl(open.fd, F_SETFL, O_NONBLOCK)
            _ = Self.readAvailable(open.fd, into: &bytes, once: false)
            append(bytes, stream: open.stream)
        }
        var verdictBytes: [UInt8] = []
        _ = fcntl(verdictPipe.read, F_SETFL, O_NONBLOCK)
        _ = Self.readAvailable(verdictPipe.read, into: &verdictBytes, once: false)

        let ending: Status
        if timedOut {
            ending = .timedOut
        } else if status & 0x7f == 0 {
            ending = .exited((status >> 8) & 0xff)
        } else {
            ending = .signaled(status & 0x7f)
        }
        return Ended(status: ending, chunks: chunks, verdictText: String(decoding: verdictBytes, as: UTF8.self))
    }

    /// This process's environment, plus a terse Swift backtrace setting for a
    /// crashing case (no register or image dumps) unless SWIFT_BACKTRACE is set.
    static func childEnvironment() -> [String] {
        var entries: [String] = []
        if var pointer = Optional(environ) {
            while let entry = pointer.pointee {
                entries.append(String(cString: entry))
                pointer = pointer.successor()
            }
        }
        if !entries.contains(where: { $0.hasPrefix("SWIFT_BACKTRACE=") }) {
            entries.append("SWIFT_BACKTRACE=registers=none,images=none,color=no,interactive=no")
        }
        return entries
    }

    /// Reads what `fd` has (once, or until EOF/EAGAIN). Returns false at EOF or error.
    private static func readAvailable(_ fd: Int32, into bytes: inout [UInt8], once: Bool) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes.append(contentsOf: chunk[0..<n])
                if once { return true }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return true }
            return false
        }
    }
}

/// A pipe whose parent-side ends are close-on-exec; the ends are kept above
/// fd 9 so dup2() onto 0...3 in the child never meets itself.
struct Pipe {
    var read: Int32 = -1
    var write: Int32 = -1

    mutating func open() -> Bool {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return false }
        read = Self.high(fds[0])
        write = Self.high(fds[1])
        return read >= 0 && write >= 0
    }

    private static func high(_ fd: Int32) -> Int32 {
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        close(fd)
        return moved
    }

    mutating func closeWrite() {
        if write >= 0 { close(write) }
        write = -1
    }

    mutating func closeBoth() {
        if read >= 0 { close(read) }
        read = -1
        closeWrite()
    }
}
