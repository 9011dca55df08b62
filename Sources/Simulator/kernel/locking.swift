import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

// kernel/locking: the simulated kernel's locks. Who holds one is the
// scheduler's business (only one task runs at a time), every acquisition and
// release is a scheduling point, and lockdep watches each one.

/// A lock of the simulated kernel: a spinlock_t, a struct mutex or a struct
/// rw_semaphore of a lock class lockdep knows.
///
/// `@unchecked Sendable`: only the running task touches it.
final class KernelLock: @unchecked Sendable {
    let lockClass: LockClass
    // Unmanaged references: the scheduler outlives its locks and keeps every task, and a
    // retain per acquisition is measurable (several locks are taken per migrated page).
    private let schedulerRef: Unmanaged<Scheduler>
    var scheduler: Scheduler { schedulerRef.takeUnretainedValue() }
    /// The exclusive holder (a spinlock's, a mutex's, a writer's).
    private var ownerRef: Unmanaged<SimTask>?
    var owner: SimTask? { ownerRef?.takeUnretainedValue() }
    /// An rw_semaphore's readers.
    private var readers: [SimTask] = []
    /// Writers waiting: a new reader waits behind them (the rwsem is fair to writers).
    private var writersWaiting = 0
    private let queue: WaitQueue

    private let lockdepRef: Unmanaged<Lockdep>

    init(_ scheduler: Scheduler, _ lockClass: LockClass) {
        schedulerRef = Unmanaged.passUnretained(scheduler)
        self.lockClass = lockClass
        lockdepRef = Unmanaged.passUnretained(scheduler.reports.lockdep)
        queue = WaitQueue(scheduler, lockClass.name)
    }

    // MARK: Exclusive (spin_lock, mutex_lock, down_write)

    /// spin_lock() / mutex_lock() / down_write().
    func lock(_ site: StaticString = #function) {
        schedulerRef._withUnsafeGuaranteedRef { scheduler in
            scheduler.point(site)
            scheduler.withCurrent { task in
                if !task.held.isEmpty {
                    lockdepRef._withUnsafeGuaranteedRef { $0.willAcquire(task, self, .exclusive, site) }
                }
                if ownerRef != nil || !readers.isEmpty {
                    writersWaiting += 1
                    scheduler.wait(on: [queue], site, reason: "\(lockClass.name), held by \(holders)") {
                        ownerRef == nil && readers.isEmpty
                    }
                    writersWaiting -= 1
                }
                ownerRef = Unmanaged.passUnretained(task)
                task.held.append(HeldLock(lock: self, mode: .exclusive, site: site))
            }
            heldPoint(scheduler, site)
        }
    }

    /// A sleeping lock's holder can be preempted inside its section, and on SMP another CPU
    /// runs meanwhile: a point just after the acquisition lets the others see the lock held
    /// (a trylock fail, a waiter queue). A spinlock's section is not preemptible, and the
    /// sections taken inside one stay atomic too.
    @inline(__always)
    private func heldPoint(_ scheduler: Scheduler, _ site: StaticString) {
        guard lockClass.sleeps, scheduler.othersRunnable else { return }
        if scheduler.withCurrent({ task in task.held.contains { $0.lock.lockClass.kind == .spinlock } }) { return }
        scheduler.point(site)
    }

    /// spin_unlock() / mutex_unlock() / up_write().
    func unlock(_ site: StaticString = #function) {
        schedulerRef._withUnsafeGuaranteedRef { scheduler in
            ownerRef = nil
            scheduler.withCurrent { $0.release(self) }
            queue.wakeAll()
            scheduler.point(site)
        }
    }

    /// spin_trylock() / mutex_trylock(): true if taken, never waits.
    func tryLock(_ site: StaticString = #function) -> Bool {
        scheduler.point(site)
        guard ownerRef == nil && readers.isEmpty else { return false }
        let task = scheduler.running
        lockdepRef.takeUnretainedValue().willAcquire(task, self, .exclusive, site, trying: true)
        ownerRef = Unmanaged.passUnretained(task)
        task.held.append(HeldLock(lock: self, mode: .exclusive, site: site))
        heldPoint(scheduler, site)
        return true
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T, site: StaticString = #function) rethrows -> T {
        lock(site)
        defer { unlock(site) }
        return try body()
    }

    // MARK: Shared (down_read)

    /// down_read().
    func readLock(_ site: StaticString = #function) {
        scheduler.point(site)
        unowned(unsafe) let task = scheduler.current
        if !task.held.isEmpty { lockdepRef.takeUnretainedValue().willAcquire(task, self, .shared, site) }
        if ownerRef != nil || writersWaiting > 0 {
            scheduler.wait(on: [queue], site, reason: "\(lockClass.name) for read, held by \(holders)") {
                ownerRef == nil && writersWaiting == 0
            }
        }
        readers.append(task)
        task.held.append(HeldLock(lock: self, mode: .shared, site: site))
        heldPoint(scheduler, site)
    }

    /// up_read().
    func readUnlock(_ site: StaticString = #function) {
        unowned(unsafe) let task = scheduler.current
        if let index = readers.firstIndex(where: { $0 === task }) { readers.remove(at: index) }
        task.release(self)
        queue.wakeAll()
        scheduler.point(site)
    }

    /// down_write() / up_write() under their kernel names.
    func writeLock(_ site: StaticString = #function) { lock(site) }
    func writeUnlock(_ site: StaticString = #function) { unlock(site) }

    /// lock_map_acquire(): a lockdep map that orders but never waits.
    func acquireMap(_ site: StaticString = #function) {
        let task = scheduler.running
        lockdepRef.takeUnretainedValue().willAcquire(task, self, .shared, site)
        task.held.append(HeldLock(lock: self, mode: .shared, site: site))
    }

    /// lock_map_release().
    func releaseMap() { scheduler.running.release(self) }

    /// Whether the running task holds it (lockdep_assert_held(), mmap_assert_locked()).
    var isHeldByRunningTask: Bool {
        let task = scheduler.running
        return owner === task || readers.contains { $0 === task }
    }

    private var holders: String {
        if let owner { return owner.description }
        return readers.map(\.description).joined(separator: ", ")
    }
}

/// A lock of the simulator's own bookkeeping, not of the simulated kernel (the
/// page frame allocator, a shmem inode's page cache, pids): a host mutex, held
/// only across code with no scheduling point in it.
///
/// `@unchecked Sendable`: the pthread mutex lives in its own heap cell.
final class HostLock: @unchecked Sendable {
    private let cell: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        cell = .allocate(capacity: 1)
        cell.initialize(to: pthread_mutex_t())
        pthread_mutex_init(cell, nil)
    }

    deinit {
        pthread_mutex_destroy(cell)
        cell.deallocate()
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(cell)
        defer { pthread_mutex_unlock(cell) }
        return try body()
    }
}

extension SimTask {
    /// Drops the most recent hold of `lock` from the held-locks list.
    func release(_ lock: KernelLock) {
        // Locks are mostly released in reverse order: the last entry, popped.
        if held.last?.lock === lock {
            held.removeLast()
        } else if let index = held.lastIndex(where: { $0.lock === lock }) {
            held.remove(at: index)
        }
    }
}
