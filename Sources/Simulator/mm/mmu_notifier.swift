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

/// struct mmu_notifier_subscriptions: the interval notifiers of one mm and the
/// invalidate sequence (odd while an invalidation of an interval is in flight).
final class MMUNotifierSubscriptions: @unchecked Sendable {
    private let lock: KernelLock
    /// subscriptions->wq: read_begin and remove wait here for an invalidation to end.
    private let waitQueue: WaitQueue
    private var notifiers: [MMUIntervalNotifier] = []
    /// invalidate_seq.
    private var sequence: UInt64 = 2
    /// active_invalidate_ranges.
    private var activeInvalidations = 0
    /// The ranges started and not yet ended.
    private var openRanges: [(start: UInt64, end: UInt64, event: MMUNotifyEvent)] = []

    init(_ scheduler: Scheduler) {
        lock = KernelLock(scheduler, .subscriptions)
        waitQueue = WaitQueue(scheduler, "subscriptions->wq")
    }

    private var scheduler: Scheduler { lock.scheduler }
    private var isInvalidating: Bool { sequence & 1 == 1 }

    /// mmu_interval_notifier_insert().
    func insert(_ notifier: MMUIntervalNotifier) {
        lock.withLock {
            // Inserted during an invalidation, it must not wait for it in read_begin.
            notifier.invalidateSeq = isInvalidating ? sequence - 1 : sequence
            notifiers.append(notifier)
        }
    }

    /// mmu_interval_notifier_remove(): waits out an invalidation of the notifier in flight.
    func remove(_ notifier: MMUIntervalNotifier, _ site: StaticString = #function) {
        lock.lock()
        let seq = notifier.invalidateSeq
        if isInvalidating && seq == sequence {
            lock.unlock()
            scheduler.wait(on: [waitQueue], site, reason: "the invalidation of a notifier being removed") {
                sequence != seq
            }
            lock.lock()
        }
        notifiers.removeAll { $0 === notifier }
        lock.unlock()
    }

    func readBegin(_ notifier: MMUIntervalNotifier, _ site: StaticString) -> UInt64 {
        let seq = lock.withLock { notifier.invalidateSeq }
        // lock_map_acquire/release of the invalidate_range_start map: read_begin may not be
        // called where an invalidation could wait for the caller.
        scheduler.invalidateMap.acquireMap(site)
        scheduler.invalidateMap.releaseMap()
        if isInvalidating && seq == sequence {
            scheduler.wait(on: [waitQueue], site, reason: "mmu_interval_read_begin(): an invalidation in flight") {
                sequence != seq
            }
        }
        return seq
    }

    /// mmu_notifier_invalidate_range_start(), or its non-blocking form (the OOM
    /// reaper's): calls each overlapping notifier's invalidate. Nil when every
    /// notifier agreed; -EAGAIN when a non-blockable one could not. The caller must
    /// then call `invalidateRangeEnd` exactly once for a start that succeeded.
    @discardableResult
    func invalidateRangeStart(_ range: MMUNotifierRange, _ site: StaticString = #function) -> Errno? {
        scheduler.point(site)
        lock.lock()
        activeInvalidations += 1
        let targets = notifiers.filter { $0.start < range.end && range.start < $0.end }
        if !targets.isEmpty { sequence |= 1 }
        let cur = sequence
        openRanges.append((range.start, range.end, range.event))
        lock.unlock()
        let task = scheduler.running
        // might_sleep(), then the callbacks inside the invalidate_range_start lockdep map.
        if range.blockable { scheduler.reports.lockdep.willSleep(task, site) }
        let map = scheduler.invalidateMap
        map.acquireMap(site)
        defer { map.releaseMap() }
        for notifier in targets {
            guard notifier.invalidate(notifier, range, cur) else {
                // mn_itree_invalidate(): a non-blockable callback said no; the fixed mm
                // (c2655835fd8c) ends what it started, the older one leaves it open.
                if !range.mm.kernel.has(.nonblockStartSkipsEnd) { invalidateRangeEnd(range, site) }
                return .EAGAIN
            }
            checkNothingLeft(notifier, range)
        }
        return nil
    }

    /// mmu_notifier_invalidate_range_end().
    func invalidateRangeEnd(_ range: MMUNotifierRange, _ site: StaticString = #function) {
        lock.lock()
        if let index = openRanges.firstIndex(where: { $0.start == range.start && $0.end == range.end && $0.event == range.event }) {
            openRanges.remove(at: index)
        } else {
            scheduler.reports.add(.unpairedInvalidation, "invalidate_range_end at \(site) for [0x\(String(range.start, radix: 16)), 0x\(String(range.end, radix: 16))) that no start began")
        }
        activeInvalidations -= 1
        let ended = activeInvalidations == 0 && isInvalidating
        if ended { sequence += 1 }
        lock.unlock()
        if ended { waitQueue.wakeAll() }
        scheduler.point(site)
    }

    /// After a notifier's invalidate returned, its driver must map nothing in the
    /// range, unless the notifier ignored a migration its own driver started.
    private func checkNothingLeft(_ notifier: MMUIntervalNotifier, _ range: MMUNotifierRange) {
        guard let mappings = notifier.mappings else { return }
        if range.event == .migrate, let owner = notifier.owner, range.owner === owner { return }
        let left = mappings(range.start, range.end)
        guard let first = left.first else { return }
        scheduler.reports.add(.staleMapping, """
            stale device mapping: after a \(range.event.rawValue) invalidation of [0x\(String(range.start, radix: 16)), \
            0x\(String(range.end, radix: 16))) returned, the driver still maps \(left.count) page(s) there, first 0x\(String(first, radix: 16))
            """)
    }

    var isEmpty: Bool { lock.withLock { notifiers.isEmpty } }

    /// Invalidations between their start and end right now.
    var invalidationsInFlight: Int { activeInvalidations }

    /// The protocol's state when nothing should be in flight: each violation, one line.
    func quiescentViolations() -> [String] {
        var problems: [String] = []
        for open in openRanges {
            problems.append("invalidate_range_start of [0x\(String(open.start, radix: 16)), 0x\(String(open.end, radix: 16))) "
                            + "(\(open.event.rawValue)) was never ended")
        }
        if activeInvalidations == 0 && isInvalidating {
            problems.append("the invalidate sequence is odd (\(sequence)) with no invalidation in flight")
        }
        return problems
    }
}

extension MMStruct {
    /// invalidate_range_start/end around `body`, as the kernel brackets a page table change.
    func withInvalidation<T>(_ event: MMUNotifyEvent, _ start: UInt64, _ end: UInt64, owner: AnyObject? = nil,
                             site: StaticString = #function, _ body: () throws -> T) rethrows -> T {
        let range = MMUNotifierRange(mm: self, start: start, end: end, event: event, owner: owner)
        notifierSubscriptions.invalidateRangeStart(range, site)
        defer { notifierSubscriptions.invalidateRangeEnd(range, site) }
        return try body()
    }
}
