import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

// kernel/sched: the simulated kernel's tasks and the deterministic scheduler
// that interleaves them.
//
// Every task is a host thread, but only one runs at a time: the running task
// holds the baton, and hands it over only at a scheduling point (a lock taken
// or released, read_begin/read_retry, an invalidation's start or end, a
// cond_resched() in a walk) or where it blocks (a lock held by another task,
// a wait queue). Which task runs next is the policy's choice, so the same
// policy and seed give the same interleaving, byte for byte.

/// A task of the simulated kernel: a thread of a simulated process.
final class SimTask: @unchecked Sendable {
    enum State: Equatable {
        case runnable
        case blocked(String)
        case finished
    }

    let id: Int
    let name: String
    fileprivate(set) var state: State = .runnable
    /// The locks it holds, in acquisition order (lockdep's held_locks).
    var held: [HeldLock] = []
    /// A fatal signal is pending: the task ends at its next return to user space.
    var killed = false
    /// Set when the task blocks, to what it waits for (a deadlock report names it).
    var waitingFor = ""
    /// A wake-up reached the task since it last went on a wait queue.
    fileprivate var woken = false
    fileprivate let baton: UnsafeMutablePointer<sem_t>
    fileprivate var body: (() -> Void)?
    fileprivate var queues: [WaitQueue] = []
    /// Tasks waiting for this one to end.
    let exited: WaitQueue

    fileprivate init(id: Int, name: String, scheduler: Scheduler) {
        self.id = id
        self.name = name
        baton = .allocate(capacity: 1)
        sem_init(baton, 0, 0)
        exited = WaitQueue(scheduler, "task \(id) exit")
    }

    deinit {
        sem_destroy(baton)
        baton.deallocate()
    }

    var isFinished: Bool { state == .finished }
    var description: String { "task \(id) (\(name))" }
}

/// A wait queue (wait_queue_head_t): tasks blocked until something changes.
final class WaitQueue: @unchecked Sendable {
    unowned(unsafe) let scheduler: Scheduler
    let name: String
    fileprivate var waiters: [SimTask] = []

    init(_ scheduler: Scheduler, _ name: String) {
        self.scheduler = scheduler
        self.name = name
    }

    /// wake_up_all(): every waiter becomes runnable and checks its condition again.
    func wakeAll() {
        guard !waiters.isEmpty else { return }
        let woken = waiters
        waiters.removeAll()
        for task in woken {
            task.woken = true
            scheduler.makeRunnable(task)
        }
    }
}

/// The deterministic scheduler of one simulated kernel.
///
/// `@unchecked Sendable`: only the task holding the baton touches it.
final class Scheduler: @unchecked Sendable {
    private(set) var tasks: [SimTask] = []
    /// Unowned: `tasks` keeps every task alive for the kernel's life, and this is read at every lock.
    private var currentTask: Unmanaged<SimTask>!
    /// The task that runs now (the one holding the baton).
    var current: SimTask { currentTask.takeUnretainedValue() }
    /// `body` on the running task, without taking a reference to it (a lock's hot path).
    @inline(__always) func withCurrent<T>(_ body: (SimTask) throws -> T) rethrows -> T {
        try currentTask._withUnsafeGuaranteedRef(body)
    }
    private var policy: SchedulePolicy
    private var random: UInt64 = 0
    private var replayIndex = 0
    /// Every decision made so far (bounded exploration reads them).
    private(set) var decisions: [ScheduleDecision] = []
    /// Scheduling points passed: the simulated clock (one point is one microsecond of jiffies).
    private(set) var steps = 0
    /// Runnable tasks, kept so a point costs nothing while only one task can run.
    private var runnableCount = 1
    /// The protocol checkers' findings.
    let reports: CheckerReports
    /// __mmu_notifier_invalidate_range_start_map.
    private var invalidateMapLock: KernelLock!
    var invalidateMap: KernelLock { invalidateMapLock }
    /// What happens when every task waits: the deadlock report is final.
    /// (The report is already in `reports`, printed there if printing is on.)
    var onDeadlock: (String) -> Never = { _ in _exit(1) }
    /// Progress: the step of the last completed system call or device command.
    private var lastProgress = 0
    /// A run that passes this many points without progress is a livelock.
    var livelockSteps = 2_000_000
    private var recentSites: [StaticString] = []
    /// Sleeping tasks and the step they wake at.
    private var sleepers: [(task: SimTask, wake: Int)] = []

    /// The scheduler of a new kernel; the calling thread becomes its task 0, "main".
    init(policy: SchedulePolicy, reports: CheckerReports) {
        self.policy = policy
        self.reports = reports
        if case .random(let seed, _) = policy { random = seed }
        let main = SimTask(id: 0, name: "main", scheduler: self)
        currentTask = Unmanaged.passUnretained(main)
        tasks = [main]
        invalidateMapLock = KernelLock(self, .invalidateMap)
    }

    /// The task that runs now: the calling thread's (only the task holding the baton runs).
    var running: SimTask { current }

    // MARK: Tasks

    /// A new runnable task that will run `body` (kernel_clone() of a thread or a
    /// child). It starts when the scheduler first picks it.
    func spawn(_ name: String, _ body: @escaping () -> Void) throws(Errno) -> SimTask {
        let task = SimTask(id: tasks.count, name: name, scheduler: self)
        task.body = body
        tasks.append(task)
        runnableCount += 1
        let box = Unmanaged.passRetained(TaskStart(task: task, scheduler: self))
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            let start = Unmanaged<TaskStart>.fromOpaque(raw!).takeRetainedValue()
            start.scheduler.taskMain(start.task)
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            task.state = .finished
            runnableCount -= 1
            throw Errno(rawValue: rc)
        }
        pthread_detach(handle)
        return task
    }

    private final class TaskStart {
        let task: SimTask
        let scheduler: Scheduler
        init(task: SimTask, scheduler: Scheduler) {
            self.task = task
            self.scheduler = scheduler
        }
    }

    /// A task thread: wait for the baton, run, end.
    private func taskMain(_ task: SimTask) {
        while sem_wait(task.baton) != 0 {}
        if let body = task.body { body() }
        task.body = nil
        exitCurrent()
    }

    /// do_exit() of the running task: it will not run again.
    func exitCurrent() {
        let task = current
        task.state = .finished
        runnableCount -= 1
        task.exited.wakeAll()
        for queue in task.queues { queue.waiters.removeAll { $0 === task } }
        guard let next = choose(currentRunnable: false) else {
            if tasks.contains(where: { !$0.isFinished }) { onDeadlock(deadlockReport()) }
            return
        }
        currentTask = Unmanaged.passUnretained(next)
        sem_post(next.baton)
    }

    /// Blocks the running task until `task` has ended (waitpid(), pthread_join()).
    func join(_ task: SimTask, _ site: StaticString = #function) {
        wait(on: [task.exited], site, reason: "waiting for \(task.description) to end") { task.isFinished }
    }

    // MARK: Scheduling points

    /// Another task could run at a point now (a point costs nothing while none can).
    var othersRunnable: Bool { runnableCount > 1 }

    /// A point where the kernel may be preempted.
    @inline(__always)
    func point(_ site: StaticString = #function) {
        steps += 1
        if othersRunnable { preemptionPoint(site) }
    }

    private func preemptionPoint(_ site: StaticString) {
        guard let next = choose(currentRunnable: true), next !== current else { return }
        switchTo(next)
    }

    /// The running task made progress (a system call or device command completed).
    func progress() {
        lastProgress = steps
        recentSites.removeAll(keepingCapacity: true)
    }

    /// Checks the livelock bound at a retry: a task that keeps retrying without
    /// progress for `livelockSteps` points. `what` says what repeats.
    func retried(_ what: @autoclosure () -> String, _ site: StaticString = #function) {
        steps += 1
        if recentSites.count < 16 { recentSites.append(site) }
        guard steps - lastProgress > livelockSteps else { return }
        let sites = recentSites.map { "\($0)" }.joined(separator: " -> ")
        reports.add(.livelock, """
            livelock: \(current.description) made no progress for \(steps - lastProgress) scheduler steps
              repeating: \(what())
              at: \(sites)
            """)
        onDeadlock(reports.last ?? "livelock")
    }

    /// A checker found what the run cannot go past, a livelock or a kernel oops (its
    /// report is already added): the run ends here, as at a deadlock.
    func endRun(_ report: String) -> Never { onDeadlock(report) }

    /// nanosleep(): the running task sleeps `nanoseconds` of simulated time (one
    /// scheduling point is one microsecond). Others run meanwhile; when nothing
    /// else can run, the clock jumps to the earliest wake-up.
    func sleep(nanoseconds: UInt64, _ site: StaticString = #function) {
        let wake = steps + max(1, Int(nanoseconds / 1000))
        let task = current
        sleepers.append((task, wake))
        wait(on: [], site, reason: "sleeping until step \(wake)") { steps >= wake }
    }

    /// Blocks the running task on `queues` until `ready()` holds: wait_event(). The
    /// task is on the queues before it reads the condition (prepare_to_wait()), so a
    /// wake-up that comes while `ready()` itself passes a scheduling point (it may take
    /// a lock) is not lost: the task reads the condition again instead of sleeping.
    func wait(on queues: [WaitQueue], _ site: StaticString, reason: @autoclosure () -> String, until ready: () -> Bool) {
        let task = current
        while true {
            task.woken = false
            for queue in queues where !queue.waiters.contains(where: { $0 === task }) { queue.waiters.append(task) }
            task.queues = queues
            if ready() {
                // finish_wait()
                for queue in queues { queue.waiters.removeAll { $0 === task } }
                task.queues = []
                return
            }
            if task.woken { continue }
            reports.lockdep.willSleep(task, site)
            task.state = .blocked(reason())
            task.waitingFor = reason()
            runnableCount -= 1
            guard let next = choose(currentRunnable: false) else { onDeadlock(deadlockReport()) }
            switchTo(next)
        }
    }

    fileprivate func makeRunnable(_ task: SimTask) {
        guard case .blocked = task.state else { return }
        for queue in task.queues where queue.waiters.contains(where: { $0 === task }) {
            queue.waiters.removeAll { $0 === task }
        }
        task.state = .runnable
        runnableCount += 1
    }

    /// Hands the baton to `next` and waits for it to come back.
    private func switchTo(_ next: SimTask) {
        let me = current
        currentTask = Unmanaged.passUnretained(next)
        sem_post(next.baton)
        while sem_wait(me.baton) != 0 {}
    }

    /// The policy's choice among the runnable tasks (nil: none can run).
    private func choose(currentRunnable: Bool) -> SimTask? {
        if !sleepers.isEmpty { wakeSleepers(force: false) }
        if runnableCount == 0 && !sleepers.isEmpty { wakeSleepers(force: true) }
        var options: [SimTask] = []
        // The running task first when it can go on (also when a sleeper's wake-up just made it so).
        if current.state == .runnable { options.append(current) }
        for task in tasks where task.state == .runnable && task !== current { options.append(task) }
        guard !options.isEmpty else { return nil }
        guard options.count > 1 else { return options[0] }
        let index: Int
        switch policy {
        case .runToBlock:
            index = 0
        case .random(_, let permille):
            if currentRunnable && Int(nextRandom() % 1000) >= permille {
                index = 0
            } else {
                index = Int(nextRandom() % UInt64(options.count))
            }
        case .replay(let choices):
            index = replayIndex < choices.count ? min(choices[replayIndex], options.count - 1) : 0
        }
        replayIndex += 1
        decisions.append(ScheduleDecision(options: options.count, chosen: index, currentRunnable: currentRunnable))
        return options[index]
    }

    /// Wakes the sleepers whose time has come; `force`: nothing else can run, so the
    /// clock moves on to the earliest one.
    private func wakeSleepers(force: Bool) {
        if force, let earliest = sleepers.map(\.wake).min() { steps = max(steps, earliest) }
        let due = sleepers.filter { $0.wake <= steps }
        guard !due.isEmpty else { return }
        sleepers.removeAll { $0.wake <= steps }
        for (task, _) in due { makeRunnable(task) }
    }

    private func nextRandom() -> UInt64 {
        random &+= 0x9E37_79B9_7F4A_7C15
        var z = random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: Reports

    /// Every task that has not ended: what it holds, what it waits for.
    func deadlockReport() -> String {
        var lines = ["deadlock: every task of the simulated kernel waits, none can run"]
        for task in tasks where !task.isFinished {
            lines.append("  \(task.description) waits for \(task.waitingFor.isEmpty ? "the CPU" : task.waitingFor)")
            if task.held.isEmpty {
                lines.append("    holding no lock")
            }
            for (index, lock) in task.held.enumerated() {
                lines.append("    #\(index): \(lock.description)")
            }
        }
        let report = lines.joined(separator: "\n")
        reports.add(.deadlock, report)
        return report
    }
}
