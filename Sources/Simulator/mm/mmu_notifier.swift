/// enum mmu_notifier_event.
enum MMUNotifyEvent: Sendable {
    case unmap
    case clear
    case protectionVMA
    case protectionPage
    case release
    case migrate
    case exclusive
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
/// `@unchecked Sendable`: `invalidateSeq` is read and written under the
/// subscription lock (`MMUNotifierSubscriptions.lock`) or the user's own lock
/// as in the kernel (set_seq is called with the driver lock held, read_retry
/// under the same lock).
final class MMUIntervalNotifier: @unchecked Sendable {
    let start: UInt64
    let end: UInt64
    unowned let mm: MMStruct
    /// mmu_interval_notifier_ops.invalidate.
    let invalidate: (MMUIntervalNotifier, MMUNotifierRange, UInt64) -> Bool
    var invalidateSeq: UInt64 = 0

    init(mm: MMStruct, start: UInt64, length: UInt64,
         invalidate: @escaping (MMUIntervalNotifier, MMUNotifierRange, UInt64) -> Bool) {
        self.mm = mm
        self.start = start
        self.end = start &+ length
        self.invalidate = invalidate
    }

    /// mmu_interval_read_begin(): waits for invalidations in progress, returns the sequence.
    func readBegin() -> UInt64 {
        mm.notifierSubscriptions.readBegin(self)
    }

    /// mmu_interval_read_retry(): true if an invalidation ran since `seq`.
    func readRetry(_ seq: UInt64) -> Bool { invalidateSeq != seq }

    /// mmu_interval_check_retry(): the lockless hint.
    func checkRetry(_ seq: UInt64) -> Bool { invalidateSeq != seq }

    /// mmu_interval_set_seq(): called by the invalidate callback under the user's lock.
    func setSeq(_ seq: UInt64) { invalidateSeq = seq }
}

/// struct mmu_notifier_subscriptions: the interval notifiers of one mm and the
/// invalidate sequence.
final class MMUNotifierSubscriptions: @unchecked Sendable {
    private let lock = SimMutex()
    private let idle = SimCondition()
    private var notifiers: [MMUIntervalNotifier] = []
    /// Odd while an invalidation is active (the kernel's invalidate_seq).
    private var sequence: UInt64 = 2
    private var activeInvalidations = 0

    /// mmu_interval_notifier_insert().
    func insert(_ notifier: MMUIntervalNotifier) {
        lock.withLock {
            notifier.invalidateSeq = sequence
            notifiers.append(notifier)
        }
    }

    /// mmu_interval_notifier_remove().
    func remove(_ notifier: MMUIntervalNotifier) {
        lock.lock()
        while activeInvalidations > 0 { lock.wait(idle) }
        notifiers.removeAll { $0 === notifier }
        lock.unlock()
    }

    func readBegin(_ notifier: MMUIntervalNotifier) -> UInt64 {
        lock.lock()
        while activeInvalidations > 0 { lock.wait(idle) }
        let seq = notifier.invalidateSeq
        lock.unlock()
        return seq
    }

    /// mmu_notifier_invalidate_range_start(): calls every overlapping notifier's invalidate.
    func invalidateRangeStart(_ range: MMUNotifierRange) {
        lock.lock()
        activeInvalidations += 1
        sequence += 2
        let cur = sequence | 1
        let targets = notifiers.filter { $0.start < range.end && range.start < $0.end }
        lock.unlock()
        for n in targets {
            _ = n.invalidate(n, range, cur)
        }
    }

    /// mmu_notifier_invalidate_range_end().
    func invalidateRangeEnd(_ range: MMUNotifierRange) {
        lock.lock()
        activeInvalidations -= 1
        if activeInvalidations == 0 { idle.broadcast() }
        lock.unlock()
    }

    var isEmpty: Bool { lock.withLock { notifiers.isEmpty } }

    /// Invalidations between their start and end right now.
    var invalidationsInFlight: Int { lock.withLock { activeInvalidations } }
}

extension MMStruct {
    /// invalidate_range_start/end around `body`, as the kernel brackets a page table change.
    func withInvalidation<T>(_ event: MMUNotifyEvent, _ start: UInt64, _ end: UInt64, owner: AnyObject? = nil,
                             _ body: () throws -> T) rethrows -> T {
        let range = MMUNotifierRange(mm: self, start: start, end: end, event: event, owner: owner)
        notifierSubscriptions.invalidateRangeStart(range)
        defer { notifierSubscriptions.invalidateRangeEnd(range) }
        return try body()
    }
}
