#if canImport(Glibc)
import Glibc
#endif

// kernel/locking/lockdep.c, reduced to what the simulated kernel needs: lock
// classes, the held-locks list of each task, the dependency graph between
// classes, and the three reports: recursive locking, a circular dependency,
// and sleeping in atomic context. Reports take lockdep's shape, with the
// acquisition sites as simulator function names.

/// A lock class (struct lock_class_key): every lock of one kind shares it.
struct LockClass: Hashable, Sendable {
    enum Kind: Sendable {
        /// spinlock_t: nothing may sleep while it is held.
        case spinlock
        /// struct mutex.
        case mutex
        /// struct rw_semaphore.
        case rwsem
        /// A lockdep map that is no lock (the invalidate_range_start map): it only orders.
        case map
    }

    let id: Int
    let name: String
    let kind: Kind

    var sleeps: Bool { kind == .mutex || kind == .rwsem }

    // One class, one id: equality and hashing look at it alone.
    static func == (a: LockClass, b: LockClass) -> Bool { a.id == b.id }
    func hash(into hasher: inout Hasher) { hasher.combine(id) }

    static let mmapLock = LockClass(id: 0, name: "&mm->mmap_lock", kind: .rwsem)
    static let ptl = LockClass(id: 1, name: "ptlock", kind: .spinlock)
    static let dmirrorMutex = LockClass(id: 2, name: "&dmirror->mutex", kind: .mutex)
    static let devmemLock = LockClass(id: 3, name: "&mdevice->devmem_lock", kind: .mutex)
    static let mdeviceLock = LockClass(id: 4, name: "&mdevice->lock", kind: .spinlock)
    static let subscriptions = LockClass(id: 5, name: "&subscriptions->lock", kind: .spinlock)
    static let invalidateMap = LockClass(id: 6, name: "mmu_notifier_invalidate_range_start", kind: .map)
    static let userfaultfd = LockClass(id: 7, name: "&ctx->fault_pending_wqh", kind: .spinlock)
    /// The device lock of the plain-mmu_notifier driver variant.
    static let deviceLock = LockClass(id: 8, name: "&mdevice->devlock", kind: .mutex)

    static let count = 9
}

/// One entry of a task's held-locks list.
struct HeldLock: CustomStringConvertible {
    enum Mode { case exclusive, shared }
    /// Unowned: a lock outlives every hold of it (and a retain per acquisition is measurable).
    unowned(unsafe) let lock: KernelLock
    let mode: Mode
    let site: StaticString

    var description: String {
        "\(lock.lockClass.name)\(mode == .shared ? " (read)" : "") at \(site)"
    }
}

/// The dependency graph and the checks made at every acquisition.
final class Lockdep: @unchecked Sendable {
    private unowned let reports: CheckerReports
    /// after[a * count + b]: a lock of class b was taken while one of class a was held.
    private var after = [Bool](repeating: false, count: LockClass.count * LockClass.count)
    /// Where each edge was first seen (the held lock's site, the new lock's site).
    private var edgeSites: [Int: (StaticString, StaticString)] = [:]

    /// before[b]: a bit for each class a with after[a * count + b], the same graph read by the
    /// new lock's class, so that an acquisition that adds nothing is checked without touching
    /// an array (plain memory: no reference count per acquisition).
    private let before: UnsafeMutablePointer<UInt32>

    init(_ reports: CheckerReports) {
        self.reports = reports
        precondition(LockClass.count <= 32, "Lockdep.before holds a bit per lock class")
        before = .allocate(capacity: LockClass.count)
        before.initialize(repeating: 0, count: LockClass.count)
    }

    deinit { before.deallocate() }

    /// Called before `task` takes `lock`.
    func willAcquire(_ task: SimTask, _ lock: KernelLock, _ mode: HeldLock.Mode, _ site: StaticString,
                     trying: Bool = false) {
        guard !task.held.isEmpty else { return }
        let new = lock.lockClass.id
        // What the checks below would find nothing in: each held lock of another class, already
        // known to come before this one, and no spinlock held when this one sleeps.
        let known = before[new]
        let sleeps = lock.lockClass.sleeps
        let quiet = task.held.withUnsafeBufferPointer { held in
            for h in held {
                let old = h.lock.lockClass.id
                if old == new || known & (1 << UInt32(old)) == 0 || (sleeps && h.lock.lockClass.kind == .spinlock) {
                    return false
                }
            }
            return true
        }
        if quiet { return }
        if sleeps, let spin = task.held.last(where: { $0.lock.lockClass.kind == .spinlock }) {
            report(.sleepInAtomic, sleeping(task, "\(lock.lockClass.name) at \(site)", holding: spin))
        }
        for held in task.held {
            let old = held.lock.lockClass.id
            if old == new {
                // A trylock cannot deadlock on itself; lockdep does not report it.
                if !trying { report(.recursiveLocking, recursive(task, lock, mode, site, held)) }
                continue
            }
            let edge = old * LockClass.count + new
            if !after[edge] {
                if reaches(from: new, to: old) {
                    report(.circularDependency, circular(task, lock, mode, site, held))
                }
                after[edge] = true
                before[new] |= 1 << UInt32(old)
                edgeSites[edge] = (held.site, site)
            }
        }
    }

    /// Called before the running task sleeps (a wait queue, not a lock).
    func willSleep(_ task: SimTask, _ site: StaticString) {
        if let spin = task.held.last(where: { $0.lock.lockClass.kind == .spinlock }) {
            report(.sleepInAtomic, sleeping(task, "a wait at \(site)", holding: spin))
        }
    }

    private func reaches(from start: Int, to goal: Int) -> Bool {
        var seen = [Bool](repeating: false, count: LockClass.count)
        var stack = [start]
        while let node = stack.popLast() {
            if node == goal { return true }
            if seen[node] { continue }
            seen[node] = true
            for next in 0..<LockClass.count where after[node * LockClass.count + next] { stack.append(next) }
        }
        return false
    }

    private func report(_ kind: CheckerReports.Kind, _ text: String) { reports.add(kind, text) }

    private func banner(_ title: String) -> [String] {
        let rule = String(repeating: "=", count: title.count + 9)
        return [rule, "WARNING: \(title)", String(repeating: "-", count: title.count + 9)]
    }

    private func heldList(_ task: SimTask) -> [String] {
        ["", "\(task.held.count) lock(s) held by \(task.description):"]
            + task.held.enumerated().map { "  #\($0.offset): \($0.element)" }
    }

    private func recursive(_ task: SimTask, _ lock: KernelLock, _ mode: HeldLock.Mode, _ site: StaticString,
                           _ held: HeldLock) -> String {
        let trying = HeldLock(lock: lock, mode: mode, site: site)
        return (banner("possible recursive locking detected") + [
            "\(task.description) is trying to acquire lock:",
            "  \(trying)",
            "but task is already holding lock:",
            "  \(held)",
        ] + heldList(task)).joined(separator: "\n")
    }

    private func circular(_ task: SimTask, _ lock: KernelLock, _ mode: HeldLock.Mode, _ site: StaticString,
                          _ held: HeldLock) -> String {
        let trying = HeldLock(lock: lock, mode: mode, site: site)
        var lines = banner("possible circular locking dependency detected") + [
            "\(task.description) is trying to acquire lock:",
            "  \(trying)",
            "but task is already holding lock:",
            "  \(held)",
            "which lock already depends on the new lock: the existing dependency chain is",
        ]
        for a in 0..<LockClass.count {
            for b in 0..<LockClass.count where after[a * LockClass.count + b] {
                if let (first, second) = edgeSites[a * LockClass.count + b] {
                    lines.append("  -> class \(a) at \(first), then class \(b) at \(second)")
                }
            }
        }
        return (lines + heldList(task)).joined(separator: "\n")
    }

    private func sleeping(_ task: SimTask, _ what: String, holding spin: HeldLock) -> String {
        (["BUG: sleeping function called from invalid context",
          "\(task.description) wants \(what)",
          "while holding the spinlock \(spin)"] + heldList(task)).joined(separator: "\n")
    }
}

/// What the simulator's protocol checkers found in one kernel's life: printed
/// to stderr when found, as a kernel prints a splat, and kept for whoever asks.
///
/// `@unchecked Sendable`: only the running task adds to it.
final class CheckerReports: @unchecked Sendable {
    enum Kind: String, Sendable {
        case recursiveLocking = "recursive locking"
        case circularDependency = "circular locking dependency"
        case sleepInAtomic = "sleeping in atomic context"
        case deadlock
        case livelock
        case selfInvalidation = "self-invalidation livelock"
        case unpairedInvalidation = "invalidate_range_start without _end"
        case notifierWarning = "mmu notifier warning"
        case oddSequence = "odd invalidate sequence"
        case staleMapping = "stale device mapping"
        case uncheckedCommit = "page table commit without read_retry"
        case oops = "kernel oops"
    }

    private(set) var entries: [(kind: Kind, text: String)] = []
    private var seen: Set<String> = []
    /// Print each report when it is found (off while exploring: the outcome carries them).
    var printing = true
    private(set) lazy var lockdep = Lockdep(self)

    /// Records `text` (once per distinct text).
    func add(_ kind: Kind, _ text: String) {
        guard seen.insert(text).inserted else { return }
        entries.append((kind, text))
        if printing { CheckerReports.emit(text) }
    }

    var last: String? { entries.last?.text }

    /// One report on stderr, as a splat would appear in the kernel log.
    static func emit(_ text: String) {
        let line = "simulator: " + text.replacingNewlines() + "\n"
        var bytes = Array(line.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            done += n
        }
    }
}

extension String {
    /// Continuation lines indented under the first, so a report stays one block.
    fileprivate func replacingNewlines() -> String {
        split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\nsimulator:   ")
    }
}
