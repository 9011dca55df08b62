import ABI
import MachineInterface
import Synchronization
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs each case in a process of its own, as kselftest does (principle 4):
/// fork(), a new process group, the case, exit with its kselftest status.
/// Isolation costs what the kernel harness's costs: one fork, no exec.
///
/// The parent waits up to the case's timeout and then SIGKILLs the group; a
/// crash or signal is one failed case; the group is SIGKILLed after every
/// case, so nothing a case left behind outlives it. `SuiteRunner` forks from
/// its one thread only (fork() in a multithreaded process is not safe).
public struct CaseLauncher: Sendable {
    /// Builds the machine a case runs on, in the case's process.
    public var makeMachine: @Sendable () -> any Machine
    /// Where each case's command trace goes (`<dir>/<case>.trace`); nil for none.
    public var traceDirectory: String?
    /// How the traces digest data.
    public var traceDigest: TraceDigest
    /// Overrides every case's timeout (seconds).
    public var timeoutOverride: Double?

    public init(traceDirectory: String? = nil, traceDigest: TraceDigest = .current, timeoutOverride: Double? = nil,
                makeMachine: @escaping @Sendable () -> any Machine) {
        self.makeMachine = makeMachine
        self.traceDirectory = traceDirectory
        self.traceDigest = traceDigest
        self.timeoutOverride = timeoutOverride
    }

    /// The case's timeout in nanoseconds.
    func timeout(of testCase: TestCase) -> UInt64 {
        UInt64((timeoutOverride ?? Double(testCase.timeoutSeconds)) * 1e9)
    }

    // MARK: The child

    /// The descriptors a case process writes to.
    struct ChildEnds {
        var verdict: FileDescriptor
        /// Where stdout and stderr go (nil: inherited from the harness).
        var stdout: FileDescriptor?
        var stderr: FileDescriptor?
        /// The parent's descriptors of other running cases, closed in the child.
        var foreign: [FileDescriptor]
    }

    /// The case process: never returns.
    func childMain(_ testCase: TestCase, _ ends: ChildEnds) -> Never {
        // setpgrp() in the kernel harness: the whole group can be killed on timeout.
        try? Sys.newProcessGroup()
        for signal in [Signal.interrupt, .term, .hangup, .pipe] { Sys.restoreDefault(signal) }
        Sys.unblockAllSignals()
        for fd in ends.foreign { try? Sys.close(fd) }
        if let null = try? Sys.open("/dev/null", O_RDONLY) {
            try? Sys.dup2(null, 0)
            try? Sys.close(null)
        }
        if let out = ends.stdout { try? Sys.dup2(out, 1) }
        if let err = ends.stderr { try? Sys.dup2(err, 2) }
        // A crashing case prints a terse Swift backtrace (no register or image dumps).
        Sys.setEnvironment("SWIFT_BACKTRACE", "registers=none,images=none,color=no,interactive=no", overwrite: false)
        Sys.keepFreedMemory()
        // Line-buffered like ksft_print_header(): a crash loses at most a partial line.
        Sys.lineBufferStandardOutput()

        var machine = makeMachine()
        var trace: CommandTrace?
        if let traceDirectory {
            do {
                let created = try CommandTrace.create(directory: traceDirectory, caseName: testCase.name.description,
                                                      digest: traceDigest)
                machine = TracingMachine(base: machine, trace: created)
                trace = created
            } catch {
                StandardError.line("dmirror: cannot create \(CommandTrace.path(directory: traceDirectory, caseName: testCase.name.description)): \(error.named)")
                Sys.exit(KSFTExit.fail)
            }
        }
        let outcome = testCase.execute(machine, StandardError.line)
        trace?.finish(outcome)
        Sys.flushStandardStreams()
        try? Sys.writeAll(ends.verdict, VerdictChannel.encode(outcome))
        Sys.exit(outcome.exitCode)
    }

    // MARK: Interrupts

    /// How many case processes the interrupt handler can track at once
    /// (`SuiteRunner` never runs more at a time).
    public static let maximumConcurrentCases = 256

    /// The process groups of the cases running now (0: a free slot), for the
    /// interrupt handler. Fixed slots of atomics: a signal handler may read them,
    /// where it could not take a lock.
    static let runningGroups: InlineArray<256, Atomic<Int32>> = InlineArray { _ in Atomic<Int32>(0) }

    /// Records `group` as running; its slot.
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

    /// Whether any case process is tracked as running (for tests).
    static var anyRunning: Bool {
        runningGroups.indices.contains { runningGroups[$0].load(ordering: .sequentiallyConsistent) != 0 }
    }

    /// Makes SIGINT, SIGTERM and SIGHUP kill every running case's process group
    /// before this process dies of the signal (a case lives in its own group,
    /// so the terminal's ^C would not reach it). SIGPIPE is ignored, so a closed
    /// stdout is an EPIPE the reporter sees and the run fails, instead of a silent death.
    public static func forwardInterrupts() {
        for signal in [Signal.interrupt, .term, .hangup] {
            Sys.setHandler(signal) { number in
                for slot in 0..<CaseLauncher.maximumConcurrentCases {
                    let group = CaseLauncher.runningGroups[slot].load(ordering: .sequentiallyConsistent)
                    if group > 0 { try? Sys.kill(-group, .kill) }
                }
                // Die of the signal itself once the handler returns.
                Sys.restoreDefault(Signal(rawValue: number))
                Sys.raise(Signal(rawValue: number))
            }
        }
        Sys.ignore(.pipe)
    }
}

/// Lines to this process's stderr, each one write(2): the one writer of stderr lines.
public enum StandardError {
    public static let line: @Sendable (String) -> Void = { text in
        try? Sys.writeAll(FileDescriptor.standardError, text.hasSuffix("\n") ? text : text + "\n")
    }
}
