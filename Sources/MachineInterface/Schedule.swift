// How a model of the kernel interleaves its tasks: the policy a run is given,
// and the decisions it made, which schedule exploration replays and varies.
// Only the simulator schedules; the real kernel's scheduler answers to no one.

/// How the scheduler picks the next task.
public enum SchedulePolicy: Sendable, Hashable {
    /// No preemption: the running task goes on until it blocks or ends, and then
    /// the lowest-numbered runnable task runs. The suite's default.
    case runToBlock
    /// At every scheduling point, switch to a random runnable task with
    /// probability `preemptPermille`/1000 (and pick a random one when the
    /// running task blocks). The same seed, the same schedule.
    case random(seed: UInt64, preemptPermille: Int)
    /// Take `choices[i]` at the i-th decision (an index into the runnable tasks
    /// in id order, the running task first when it can go on); past the end,
    /// as `runToBlock`. What bounded exploration replays.
    case replay([Int])
}

/// One decision the scheduler made: how many tasks it could have run, which it
/// ran, and whether running it preempted a task that could have gone on.
public struct ScheduleDecision: Sendable, Hashable {
    public let options: Int
    public let chosen: Int
    /// The running task was runnable (choosing another is a preemption).
    public let currentRunnable: Bool

    public init(options: Int, chosen: Int, currentRunnable: Bool) {
        self.options = options
        self.chosen = chosen
        self.currentRunnable = currentRunnable
    }

    /// Choosing `chosen` here switched away from a task that could have gone on.
    public var isPreemption: Bool { currentRunnable && chosen != 0 }
}
