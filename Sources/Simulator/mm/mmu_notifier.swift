import ABI

// mm/mmu_notifier.c: interval notifiers, the invalidate sequence, and
// invalidate_range_start/end, with the checks of the notifier protocol:
// every start that took action is ended once; the sequence is even when no
// invalidation is in flight; once a notifier's invalidate returns, its driver
// maps nothing in the range; a driver commits a walk only under its lock and
// after read_retry said the sequence did not move.

/// enum mmu_notifier_event.
enum MMUNotifyEvent: String, Sendable {
    case unmap = "UNMAP"
    case clear = "CLEAR"
    case protectionVMA = "PROTECTION_VMA"
    case protectionPage = "PROTECTION_PAGE"
    case release = "RELEASE"
    case migrate = "MIGRATE"
    case exclusive = "EXCLUSIVE"
}

/// struct mmu_notifier_range.
struct MMUNotifierRange {
    let mm: MMStruct
    let start: UInt64
    let end: UInt64
    let event: MMUNotifyEvent
    /// range->owner (the pgmap owner for MIGRATE, a device for EXCLUSIVE), compared by identity.
    let owner: AnyObject?
    /// mmu_notifier_range_blockable().
    var blockable: Bool = true
    /// The range's identity (the kernel passes the same struct's address to start and end).
    var id: Int = 0
}

/// struct mmu_notifier and its ops: a subscription to every invalidation of the
/// mm (the hlist), the way drivers mirrored before interval notifiers. Since
/// c2655835fd8c a notifier whose start may fail has no end.
///
/// `@unchecked Sendable`: only the running task touches it.
final class MMUNotifier: @unchecked Sendable {
    let name: String
    /// ops->invalidate_range_start: false is -EAGAIN (allowed only when the range is not blockable).
    let start: (MMUNotifierRange) -> Bool
    /// ops->invalidate_range_end, if the notifier has one.
    let end: ((MMUNotifierRange) -> Void)?
    /// What the driver still maps in a range (the stale-mapping check), if it maps anything.
    let mappings: ((UInt64, UInt64) -> [UInt64])?
    /// Ranges whose start succeeded and whose end has not come (the pairing checker).
    var started: [(id: Int, start: UInt64, end: UInt64, event: MMUNotifyEvent)] = []

    init(name: String, mappings: ((UInt64, UInt64) -> [UInt64])? = nil,
         start: @escaping (MMUNotifierRange) -> Bool, end: ((MMUNotifierRange) -> Void)?) {
        self.name = name
        self.mappings = mappings
        self.start = start
        self.end = end
    }
}

/// One invalidation as the self-invalidation checker reports it: who started it,
/// for what event, on behalf of which owner.
struct InvalidationCause: CustomStringConvertible {
    let task: Int
    let taskName: String
    let event: MMUNotifyEvent
    let owner: String?
    let site: StaticString

    var description: String {
        "MMU_NOTIFY_\(event.rawValue)" + (owner.map { " owner \($0)" } ?? " (no owner)")
            + " from \(site) by task \(task) (\(taskName))"
    }
}

/// struct mmu_interval_notifier.
///
/// `@unchecked Sendable`: only the running task touches it; `invalidateSeq` is
/// written under the subscriptions lock or the user's own lock, as in the kernel.
final class MMUIntervalNotifier: @unchecked Sendable {
    let start: UInt64
    let end: UInt64
    unowned let mm: MMStruct
    /// mmu_interval_notifier_ops.invalidate.
    let invalidate: (MMUIntervalNotifier, MMUNotifierRange, UInt64) -> Bool
    var invalidateSeq: UInt64 = 0
    /// Who the driver is (its pgmap owner): the MIGRATE invalidations it starts itself
    /// may be ignored, as dmirror_interval_invalidate() does.
    let owner: AnyObject?
    /// What the driver still maps in a range (for the stale-mapping check), if it maps anything.
    let mappings: ((UInt64, UInt64) -> [UInt64])?
    /// Per task: the sequence of its last read_begin, and whether read_retry then said it held.
    /// A list, not a dictionary: a notifier has a task or two, and this runs on every fault.
    private var reads: [Read] = []
    private struct Read {
        let task: Int
        var seq: UInt64
        var validated: Bool
        /// The invalidations of this notifier since the read began (the last few).
        var causes: [InvalidationCause] = []
    }

    /// Remembers an invalidation against every read in progress.
    func note(_ cause: InvalidationCause) {
        for i in reads.indices {
            if reads[i].causes.count == 8 { reads[i].causes.removeFirst() }
            reads[i].causes.append(cause)
        }
    }

    /// The invalidations of this notifier since the running task's read_begin: what
    /// made its sequence move (the self-invalidation checker reads them).
    func invalidationsSinceReadBegin() -> [InvalidationCause] {
        let task = mm.kernel.scheduler.current.id
        return reads.first { $0.task == task }?.causes ?? []
    }

    init(mm: MMStruct, start: UInt64, length: UInt64, owner: AnyObject? = nil,
         mappings: ((UInt64, UInt64) -> [UInt64])? = nil,
         invalidate: @escaping (MMUIntervalNotifier, MMUNotifierRange, UInt64) -> Bool) {
        self.mm = mm
        self.start = start
        self.end = start &+ length
        self.owner = owner
        self.mappings = mappings
        self.invalidate = invalidate
    }

    /// mmu_interval_read_begin(): waits while an invalidation of this notifier is in
    /// flight, returns the sequence to check later.
    func readBegin(_ site: StaticString = #function) -> UInt64 {
        let seq = mm.notifierSubscriptions.readBegin(self, site)
        let task = mm.kernel.scheduler.running.id
        if let index = reads.firstIndex(where: { $0.task == task }) {
            reads[index].seq = seq
            reads[index].validated = false
            reads[index].causes.removeAll(keepingCapacity: true)
        } else {
            reads.append(Read(task: task, seq: seq, validated: false))
        }
        return seq
    }

    /// mmu_interval_read_retry(): true if an invalidation ran since `seq`. Called
    /// under the driver's lock.
    func readRetry(_ seq: UInt64, _ site: StaticString = #function) -> Bool {
        mm.kernel.scheduler.point(site)
        let retry = invalidateSeq != seq
        let task = mm.kernel.scheduler.running.id
        if !retry, let index = reads.firstIndex(where: { $0.task == task }), reads[index].seq == seq {
            reads[index].validated = true
        }
        return retry
    }

    /// mmu_interval_check_retry(): the lockless hint.
    func checkRetry(_ seq: UInt64) -> Bool { invalidateSeq != seq }

    /// mmu_interval_set_seq(): called by the invalidate callback under the user's lock.
    func setSeq(_ seq: UInt64) { invalidateSeq = seq }

    /// The driver is about to write a walk's result (read at `seq`) into its page table:
    /// under `lock`, after read_retry said `seq` still holds.
    func willCommit(_ seq: UInt64, under lock: KernelLock, _ site: StaticString = #function) {
        let task = mm.kernel.scheduler.running
        let reports = mm.kernel.checkers
        if !lock.isHeldByRunningTask {
            reports.add(.uncheckedCommit, "\(task.description) updates the device page table at \(site) without \(lock.lockClass.name)")
        } else if !reads.contains(where: { $0.task == task.id && $0.seq == seq && $0.validated }) || invalidateSeq != seq {
            reports.add(.uncheckedCommit, """
                \(task.description) updates the device page table at \(site) with a walk read at sequence \(seq) \
                that mmu_interval_read_retry() did not confirm (the notifier's sequence is now \(invalidateSeq))
                """)
        }
        reads.removeAll { $0.task == task.id }
    }
}

extension MMStruct {
    /// invalidate_range_start/end around `body`, as the kernel brackets a page table change.
    func withInvalidation<T>(_ event: MMUNotifyEvent, _ start: UInt64, _ end: UInt64, owner: AnyObject? = nil,
                             site: StaticString = #function, _ body: () throws -> T) rethrows -> T {
        var range = MMUNotifierRange(mm: self, start: start, end: end, event: event, owner: owner)
        notifierSubscriptions.invalidateRangeStart(&range, site)
        defer { notifierSubscriptions.invalidateRangeEnd(range, site) }
        return try body()
    }
}
