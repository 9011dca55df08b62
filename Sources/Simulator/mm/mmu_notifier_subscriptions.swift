import ABI

// mm/mmu_notifier.c, the mm's side: struct mmu_notifier_subscriptions, the interval
// tree's invalidate sequence, mmu_notifier_invalidate_range_start/end with the
// protocol checks, and the hlist of plain notifiers.

/// struct mmu_notifier_subscriptions: the interval notifiers of one mm and the
/// invalidate sequence (odd while an invalidation of an interval is in flight).
final class MMUNotifierSubscriptions: @unchecked Sendable {
    private let lock: KernelLock
    /// subscriptions->wq: read_begin and remove wait here for an invalidation to end.
    private let waitQueue: WaitQueue
    private var notifiers: [MMUIntervalNotifier] = []
    /// subscriptions->list: the plain notifiers, newest first (hlist_add_head_rcu()).
    private var plain: [MMUNotifier] = []
    private var nextRangeID = 1
    /// subscriptions->has_itree: set by the first interval notifier, never cleared. Without
    /// it, invalidations leave the interval sequence alone.
    private var hasItree = false
    /// invalidate_seq.
    private var sequence: UInt64 = 2
    /// active_invalidate_ranges.
    private var activeInvalidations = 0
    /// The ranges started and not yet ended.
    /// `itree`: the start counted in the interval sequence (there were interval notifiers).
    private var openRanges: [(id: Int, start: UInt64, end: UInt64, event: MMUNotifyEvent, itree: Bool)] = []

    init(_ scheduler: Scheduler) {
        lock = KernelLock(scheduler, .subscriptions)
        waitQueue = WaitQueue(scheduler, "subscriptions->wq")
    }

    private var scheduler: Scheduler { lock.scheduler }
    private var isInvalidating: Bool { sequence & 1 == 1 }

    /// mmu_interval_notifier_insert().
    func insert(_ notifier: MMUIntervalNotifier) {
        lock.withLock {
            hasItree = true
            // Inserted during an invalidation, it must not wait for it in read_begin.
            notifier.invalidateSeq = isInvalidating ? sequence - 1 : sequence
            notifiers.append(notifier)
        }
    }

    /// mmu_notifier_register().
    func register(_ notifier: MMUNotifier) {
        lock.withLock { plain.insert(notifier, at: 0) }
    }

    /// mmu_notifier_unregister() (its synchronize_srcu() is implied: only the running task runs).
    /// An invalidation in flight may end after it: the notifier then gets no end, which
    /// is the kernel's contract, not a pairing fault.
    func unregister(_ notifier: MMUNotifier) {
        lock.withLock { plain.removeAll { $0 === notifier } }
        notifier.started.removeAll()
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
    /// reaper's): the interval notifiers first (mn_itree_invalidate()), then the
    /// plain ones (mn_hlist_invalidate_range_start()). Nil when every notifier
    /// agreed: the caller must then call `invalidateRangeEnd` exactly once. -EAGAIN
    /// when a non-blockable one refused: the caller must not call it.
    @discardableResult
    func invalidateRangeStart(_ range: inout MMUNotifierRange, _ site: StaticString = #function) -> Errno? {
        scheduler.point(site)
        lock.lock()
        range.id = nextRangeID
        nextRangeID += 1
        // mn_itree_inv_start_range()
        let itree = hasItree
        if itree { activeInvalidations += 1 }
        let targets = notifiers.filter { $0.start < range.end && range.start < $0.end }
        if !targets.isEmpty { sequence |= 1 }
        let cur = sequence
        let subscribers = plain
        openRanges.append((range.id, range.start, range.end, range.event, itree))
        lock.unlock()
        let task = scheduler.running
        // might_sleep(), then the callbacks inside the invalidate_range_start lockdep map.
        if range.blockable { scheduler.reports.lockdep.willSleep(task, site) }
        let map = scheduler.invalidateMap
        map.acquireMap(site)
        defer { map.releaseMap() }
        let cause = InvalidationCause(task: task.id, taskName: task.name, event: range.event,
                                      owner: range.owner.map { ($0 as? CustomStringConvertible)?.description ?? "\(type(of: $0))" },
                                      site: site)
        for notifier in targets {
            notifier.note(cause)
            guard notifier.invalidate(notifier, range, cur) else {
                if range.blockable { warn("an interval notifier's invalidate failed in a blockable context at \(site)") }
                // On -EAGAIN the caller may not call _end: mn_itree_inv_end() here.
                refused(range)
                endInterval()
                return .EAGAIN
            }
            checkNothingLeft(notifier.mappings, range, ignoring: notifier.owner)
        }
        guard !subscribers.isEmpty else { return nil }
        var failed = false
        for notifier in subscribers {
            if notifier.start(range) {
                // Only a notifier with an end expects one.
                if notifier.end != nil { notifier.started.append((range.id, range.start, range.end, range.event)) }
                checkNothingLeft(notifier.mappings, range, ignoring: nil)
                continue
            }
            if range.blockable { warn("\(notifier.name)'s invalidate_range_start failed in a blockable context") }
            if notifier.end != nil {
                warn("\(notifier.name)'s invalidate_range_start failed but it has an invalidate_range_end, "
                     + "which cannot know whether its start ran")
            }
            failed = true
        }
        guard failed else { return nil }
        // The caller skips _end. Since c2655835fd8c every notifier with an end gets it now,
        // as the ones whose start succeeded expect; before, they were left started.
        if !range.mm.kernel.has(.nonblockStartSkipsEnd) {
            for notifier in subscribers {
                guard let end = notifier.end else { continue }
                end(range)
                notifier.started.removeAll { $0.id == range.id }
            }
        } else {
            for notifier in subscribers where notifier.started.contains(where: { $0.id == range.id }) {
                scheduler.reports.add(.unpairedInvalidation, """
                    \(notifier.name): its invalidate_range_start of [0x\(String(range.start, radix: 16)), \
                    0x\(String(range.end, radix: 16))) (\(range.event.rawValue)) succeeded, another notifier refused \
                    (-EAGAIN), and no _end will follow: the caller of a failed start may not end it, and the mm did not
                    """)
            }
        }
        // The interval part is not ended on this path (mn_hlist_invalidate_range_start()
        // returns after mn_itree_invalidate() succeeded): it stays in flight.
        refused(range)
        return .EAGAIN
    }

    /// mmu_notifier_invalidate_range_end().
    func invalidateRangeEnd(_ range: MMUNotifierRange, _ site: StaticString = #function) {
        lock.lock()
        var itree = false
        if let index = openRanges.firstIndex(where: { $0.id == range.id }) {
            itree = openRanges.remove(at: index).itree
        } else {
            scheduler.reports.add(.unpairedInvalidation, "invalidate_range_end at \(site) for [0x\(String(range.start, radix: 16)), 0x\(String(range.end, radix: 16))) that no successful start began")
        }
        let subscribers = plain
        lock.unlock()
        if itree { endInterval() }
        // mn_hlist_invalidate_end()
        for notifier in subscribers {
            guard let end = notifier.end else { continue }
            end(range)
            notifier.started.removeAll { $0.id == range.id }
        }
        scheduler.point(site)
    }

    /// mn_itree_inv_end(): the last range to end makes the sequence even and wakes the waiters.
    private func endInterval() {
        lock.lock()
        activeInvalidations -= 1
        let ended = activeInvalidations == 0 && isInvalidating
        if ended { sequence += 1 }
        lock.unlock()
        if ended { waitQueue.wakeAll() }
    }

    /// A start that returned -EAGAIN: its caller will not end it.
    private func refused(_ range: MMUNotifierRange) {
        lock.withLock { openRanges.removeAll { $0.id == range.id } }
    }

    private func warn(_ text: String) {
        scheduler.reports.add(.notifierWarning, "WARNING: mm/mmu_notifier.c: " + text)
    }

    /// After a notifier's invalidate returned, its driver must map nothing in the
    /// range, unless the notifier ignored a migration its own driver started.
    private func checkNothingLeft(_ mappings: ((UInt64, UInt64) -> [UInt64])?, _ range: MMUNotifierRange,
                                  ignoring owner: AnyObject?) {
        guard let mappings else { return }
        if range.event == .migrate, let owner, range.owner === owner { return }
        let left = mappings(range.start, range.end)
        guard let first = left.first else { return }
        scheduler.reports.add(.staleMapping, """
            stale device mapping: after a \(range.event.rawValue) invalidation of [0x\(String(range.start, radix: 16)), \
            0x\(String(range.end, radix: 16))) returned, the driver still maps \(left.count) page(s) there, first 0x\(String(first, radix: 16))
            """)
    }

    var isEmpty: Bool { lock.withLock { notifiers.isEmpty } }

    /// The protocol's state when nothing should be in flight: each violation, one line.
    func quiescentViolations() -> [String] {
        var problems: [String] = []
        for open in openRanges {
            problems.append("invalidate_range_start of [0x\(String(open.start, radix: 16)), 0x\(String(open.end, radix: 16))) "
                            + "(\(open.event.rawValue)) was never ended")
        }
        for notifier in plain {
            for open in notifier.started {
                problems.append("\(notifier.name): its invalidate_range_start of [0x\(String(open.start, radix: 16)), "
                                + "0x\(String(open.end, radix: 16))) (\(open.event.rawValue)) succeeded and no _end followed")
            }
        }
        if activeInvalidations > 0 {
            problems.append("\(activeInvalidations) interval invalidation(s) started and not ended (the invalidate sequence stays odd)")
        }
        if activeInvalidations == 0 && isInvalidating {
            problems.append("the invalidate sequence is odd (\(sequence)) with no invalidation in flight")
        }
        return problems
    }
}
