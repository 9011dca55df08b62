import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

/// A sleeping lock (struct mutex / spinlock_t in the kernel).
///
/// `@unchecked Sendable`: the pthread mutex lives in its own heap cell and is
/// only touched through pthread calls, which are thread-safe by definition.
final class SimMutex: @unchecked Sendable {
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

    func lock() { pthread_mutex_lock(cell) }
    func unlock() { pthread_mutex_unlock(cell) }
    /// mutex_trylock(): true if taken.
    func tryLock() -> Bool { pthread_mutex_trylock(cell) == 0 }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits on `condition` (which must be used with this mutex only).
    func wait(_ condition: SimCondition, timeoutNanoseconds: Int? = nil) {
        condition.wait(on: cell, timeoutNanoseconds: timeoutNanoseconds)
    }
}

/// A wait queue (wait_queue_head_t) paired with a `SimMutex`.
final class SimCondition: @unchecked Sendable {
    private let cell: UnsafeMutablePointer<pthread_cond_t>

    init() {
        cell = .allocate(capacity: 1)
        cell.initialize(to: pthread_cond_t())
        pthread_cond_init(cell, nil)
    }

    deinit {
        pthread_cond_destroy(cell)
        cell.deallocate()
    }

    fileprivate func wait(on mutex: UnsafeMutablePointer<pthread_mutex_t>, timeoutNanoseconds: Int?) {
        guard let timeoutNanoseconds else {
            pthread_cond_wait(cell, mutex)
            return
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var nsec = Int(now.tv_nsec) + timeoutNanoseconds
        var deadline = now
        deadline.tv_sec += nsec / 1_000_000_000
        nsec %= 1_000_000_000
        deadline.tv_nsec = nsec
        pthread_cond_timedwait(cell, mutex, &deadline)
    }

    func broadcast() { pthread_cond_broadcast(cell) }
}

/// A read/write semaphore (struct rw_semaphore): the mmap_lock.
///
/// `@unchecked Sendable`: a pthread rwlock in its own heap cell.
final class RWSemaphore: @unchecked Sendable {
    private let cell: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        cell = .allocate(capacity: 1)
        cell.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(cell, nil)
    }

    deinit {
        pthread_rwlock_destroy(cell)
        cell.deallocate()
    }

    /// down_read().
    func readLock() { pthread_rwlock_rdlock(cell) }
    /// up_read().
    func readUnlock() { pthread_rwlock_unlock(cell) }
    /// down_write().
    func writeLock() { pthread_rwlock_wrlock(cell) }
    /// up_write().
    func writeUnlock() { pthread_rwlock_unlock(cell) }
}

/// A monotonic clock in milliseconds (jiffies for timeouts).
func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000
}

/// cond_resched()/schedule() while waiting on something another thread will finish.
func simYield() {
    sched_yield()
}

/// A host thread for a simulated thread (pthread_create/pthread_join): the
/// simulator is thread-safe the way the kernel is, so threads race for real.
final class SimThread: MachineThread, @unchecked Sendable {
    private var thread: pthread_t
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    init(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        let box = Unmanaged.passRetained(Box(body))
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw Errno(rawValue: rc)
        }
        thread = handle
    }

    func join() { pthread_join(thread, nil) }
}

/// nanosleep(2) of the host (a simulated thread that sleeps lets others run).
func hostSleep(nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
