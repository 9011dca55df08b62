import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

// kernel/exit.c and wait: a forked simulated child and a thread, how they end,
// and waitpid() / pthread_join().

/// A forked simulated child: a task of its own with a copy of the parent's mm.
/// It runs when the scheduler picks it (under the default policy: when the
/// parent blocks, e.g. in wait()). A child killed before it ran never runs.
///
/// `@unchecked Sendable`: only the running task touches it.
final class SimChild: ChildProcess, @unchecked Sendable {
    let process: SimProcess
    private(set) var task: SimTask!
    private var status: ExitStatus?

    private init(process: SimProcess) { self.process = process }

    /// kernel_clone(): the child's task, runnable from now on.
    static func start(_ process: SimProcess, _ body: @escaping (any Machine) throws -> Int32) throws(Errno) -> SimChild {
        let child = SimChild(process: process)
        process.child = child
        child.task = try process.kernel.scheduler.spawn("child \(process.pid)") { [child] in
            if child.task.killed {
                child.finish(child.status ?? .signaled(.kill))
                return
            }
            let code: Int32
            do { code = try body(child.process) } catch { code = 1 }
            // The way to exit_group() is user code a SIGKILL can still overtake.
            child.process.kernel.scheduler.point()
            // do_exit((code & 0xff) << 8): waitpid sees the low byte; a signal that came first wins.
            child.finish(.exited(code & 0xff))
        }
        return child
    }

    var pid: Int32 { process.pid }

    /// kill(): the child ends at its next return to user space (before it ran: it never runs).
    /// signal_wake_up() lets it run at once on another CPU, so the sender may be
    /// preempted on its way back: the child can have exited before the sender's next call.
    func kill(_ signal: Signal) throws(Errno) {
        guard status == nil, !task.isFinished else { return }
        status = .signaled(signal)
        task.killed = true
        process.kernel.scheduler.point()
    }

    /// waitpid().
    func wait() throws(Errno) -> ExitStatus {
        process.kernel.scheduler.join(task)
        return status ?? .exited(0)
    }

    private func finish(_ result: ExitStatus) {
        if status == nil { status = result }
        process.exit()
    }

    /// A signal is pending (the child was killed while it ran): end at this return to user space.
    func deliverPendingSignal() {
        guard task.killed, let status, case .signaled(let signal) = status else { return }
        terminate(by: signal)
    }

    /// A fatal signal in the child: it ends here.
    func terminate(by signal: Signal) -> Never {
        finish(.signaled(signal))
        process.kernel.scheduler.exitCurrent()
        pthread_exit(nil)
    }
}

/// A thread of a simulated process: a task sharing its mm.
final class SimThread: MachineThread, @unchecked Sendable {
    let task: SimTask
    unowned let scheduler: Scheduler

    init(_ scheduler: Scheduler, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        self.scheduler = scheduler
        task = try scheduler.spawn("thread", body)
    }

    /// pthread_join().
    func join() { scheduler.join(task) }
}
