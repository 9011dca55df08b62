import ABI
import MachineInterface

// lib/test_hmm.c: HMM_DMIRROR_READ, _WRITE and _READ_UNLOCKED, the device
// faults behind them (hmm_range_fault() in 32-page windows), and the retry on
// the notifier sequence that every mirroring path shares.

extension Dmirror {
    /// How a window is faulted in.
    enum RangeWalk {
        /// hmm_range_fault() under mmap_read_lock, retried on -EBUSY until the
        /// deadline (HMM_RANGE_DEFAULT_TIMEOUT): dmirror_range_fault(), dmirror_range_snapshot().
        case locked(deadline: Int)
        /// hmm_range_fault() with mmap_lock held by the caller for the whole
        /// operation (the migrate-on-fault handler), retried until the deadline.
        case callerLocked(deadline: Int)
        /// hmm_range_fault_unlocked_timeout(range, timeout), which takes mmap_lock
        /// itself and lets the fault drop it: dmirror_range_fault_unlocked().
        case unlocked(timeoutMilliseconds: Int)
    }

    /// Consecutive retries a walk may take for invalidations its own task caused
    /// before the checker calls it a self-invalidation livelock and ends the run. A COW
    /// break in hmm_range_fault() costs one; the bound leaves room for a few honest ones.
    static let selfInvalidationBound = 16

    /// The notifier-sequence retry of lib/test_hmm.c, written once for
    /// dmirror_range_fault(), dmirror_range_fault_unlocked(),
    /// dmirror_range_snapshot() and the migrate-on-fault handler: walk the range
    /// after mmu_interval_read_begin(), take the driver's mutex, and commit the
    /// result only if mmu_interval_read_retry() says no invalidation ran in
    /// between; otherwise walk again. A migrating walk's pages are moved
    /// (migrate_vma_pages()) before the check and finalized after the mutex,
    /// whether they were mapped or the walk is retried.
    func mirrorRange(_ range: HMMRange, _ walk: RangeWalk, commit: (HMMRange) -> Errno?) -> Errno? {
        var selfCaused = 0
        while true {
            switch walk {
            case .locked(let deadline), .callerLocked(let deadline):
                if mm.kernel.milliseconds > deadline { return .EBUSY }
                range.notifierSeq = range.notifier.readBegin()
                if case .locked = walk { mm.mmapLock.readLock() }
                let ret = mm.hmmRangeFault(range)
                if case .locked = walk { mm.mmapLock.readUnlock() }
                if let ret {
                    if ret == .EBUSY {
                        noteRetry(range, &selfCaused)
                        continue
                    }
                    return ret
                }
            case .unlocked(let timeout):
                if let ret = mm.hmmRangeFaultUnlockedTimeout(range, timeoutMilliseconds: timeout) { return ret }
            }
            if let args = range.migrate {
                migrateAllocAndCopy(args)
                mm.migrateVMAPages(args)
            }
            mutex.lock()
            // The no-read-retry variant commits whatever the walk saw.
            if !mm.kernel.has(.noReadRetry) && range.notifier.readRetry(range.notifierSeq) {
                mutex.unlock()
                if let args = range.migrate { mm.migrateVMAFinalize(args) }
                noteRetry(range, &selfCaused)
                continue
            }
            let ret = commit(range)
            mutex.unlock()
            if let args = range.migrate { mm.migrateVMAFinalize(args) }
            return ret
        }
    }

    /// A walk is retried: bound the retries (the scheduler's livelock check), and
    /// count those that only the faulting task's own invalidations caused.
    private func noteRetry(_ range: HMMRange, _ selfCaused: inout Int) {
        let causes = range.notifier.invalidationsSinceReadBegin()
        let task = mm.kernel.scheduler.current
        if !causes.isEmpty && causes.allSatisfy({ $0.task == task.id }) {
            selfCaused += 1
        } else {
            selfCaused = 0
        }
        if selfCaused == Dmirror.selfInvalidationBound {
            let lines = causes.map { "  \($0)" }
            let report = ([
                "self-invalidation livelock: \(task.description) retried hmm_range_fault() on "
                    + "[0x\(String(range.start, radix: 16)), 0x\(String(range.end, radix: 16))) "
                    + "\(selfCaused) times in a row, each time for invalidations it caused itself:",
            ] + lines).joined(separator: "\n")
            mm.kernel.checkers.add(.selfInvalidation, report)
            // Nothing else can end the loop (the kernel's would give -EBUSY a second later, or
            // never for READ_UNLOCKED): the report is final, as a deadlock's is.
            mm.kernel.scheduler.endRun(report)
        }
        mm.kernel.scheduler.retried("the notifier-sequence retry of [0x\(String(range.start, radix: 16)), 0x\(String(range.end, radix: 16)))")
    }

    /// The hmm_range of a device fault window, or of a snapshot window (no faulting).
    func makeRange(_ start: UInt64, _ end: UInt64, write: Bool, fault: Bool = true, migrate: Bool = false,
                   notifier: MMUIntervalNotifier? = nil) -> HMMRange {
        HMMRange(notifier: notifier ?? self.notifier, start: start, end: end, pageShift: mm.pageShift,
                 requestFault: fault, requestWrite: write, devPrivateOwner: mdevice, requestMigrate: migrate)
    }

    /// dmirror_fault() / dmirror_fault_unlocked(): 32-page windows over [start, end),
    /// each mirrored into `pt` by dmirror_do_fault().
    func fault(_ start: UInt64, _ end: UInt64, write: Bool, unlocked: Bool) -> Errno? {
        if let plain { return plainFault(plain, start, end, write: write) }
        return withMM(orElse: .EFAULT) {
            var addr = start
            while addr < end {
                let next = min(addr + UInt64(32 * pageSize), end)
                // dmirror_read_unlocked() passes a timeout of 0: retry forever.
                let walk: RangeWalk = unlocked ? .unlocked(timeoutMilliseconds: 0)
                    : .locked(deadline: mm.kernel.milliseconds + 1000)
                if let e = mirrorRange(makeRange(addr, next, write: write), walk, commit: doFault) { return e }
                addr = next
            }
            return nil
        }
    }

    /// dmirror_do_fault(): store the faulted pages in pt. Caller holds `mutex`.
    func doFault(_ range: HMMRange) -> Errno? {
        range.notifier.willCommit(range.notifierSeq, under: mutex)
        var pfn = range.start >> pageShift
        for hmm in range.hmmPfns {
            guard let page = hmm.page, hmm.flags.contains(.valid) else { return .EFAULT }
            if hmm.flags.contains(.write) {
                pt[pfn] = DmirrorPTEntry(page: page, tag: .write)
            } else if range.requestWrite {
                return .EFAULT
            } else {
                pt[pfn] = DmirrorPTEntry(page: page, tag: .read)
            }
            pfn += 1
        }
        return nil
    }

    // MARK: READ, READ_UNLOCKED, WRITE

    /// dmirror_do_read(): copy pt pages into the bounce buffer; -ENOENT at the first hole.
    func doRead(_ start: UInt64, _ end: UInt64, _ bounce: DmirrorBounce) -> Errno? {
        var dst = bounce.ptr + Int(start - bounce.addr)
        var hole = false
        let pageSize = self.pageSize
        let kernel = mm.kernel
        pt.scan(start >> pageShift, end >> pageShift) { entry in
            guard let entry else {
                hole = true
                return false
            }
            kernel.memcpyFromPage(dst, entry.page, pageSize, caller: "dmirror_do_read")
            dst += pageSize
            bounce.cpages += 1
            return true
        }
        return hole ? .ENOENT : nil
    }

    /// dmirror_do_write(): only WRITE-tagged entries count as present.
    private func doWrite(_ start: UInt64, _ end: UInt64, _ bounce: DmirrorBounce) -> Errno? {
        var src = bounce.ptr + Int(start - bounce.addr)
        var pfn = start >> pageShift
        while pfn < end >> pageShift {
            guard let entry = pt[pfn], entry.tag == .write else { return .ENOENT }
            mm.kernel.memcpyToPage(entry.page, src, pageSize, caller: "dmirror_do_write")
            src += pageSize
            bounce.cpages += 1
            pfn += 1
        }
        return nil
    }

    /// dmirror_read(): HMM_DMIRROR_READ.
    func read(_ cmd: inout DmirrorCmd) -> Errno? { read(&cmd, unlocked: false) }

    /// dmirror_read_unlocked(): HMM_DMIRROR_READ_UNLOCKED, whose faults may drop mmap_lock.
    func readUnlocked(_ cmd: inout DmirrorCmd) -> Errno? { read(&cmd, unlocked: true) }

    /// The loop both reads share: read what `pt` has, fault the rest in one round, again.
    private func read(_ cmd: inout DmirrorCmd, unlocked: Bool) -> Errno? {
        guard let range = commandRange(cmd) else { return .EINVAL }
        var start = range.start
        let end = range.end
        let bounce: DmirrorBounce
        switch bounceInit(start, range.size) {
        case .success(let b): bounce = b
        case .failure(let e): return e
        }
        defer { cmd.cpages = bounce.cpages }
        while true {
            let ret = mutex.withLock { doRead(start, end, bounce) }
            if ret != .ENOENT {
                if let ret { return ret }
                break
            }
            start = cmd.addr + (bounce.cpages << pageShift)
            if let e = fault(start, end, write: false, unlocked: unlocked) { return e }
            cmd.faults += 1
        }
        return copyToUser(cmd.ptr, bounce)
    }

    /// dmirror_write(): HMM_DMIRROR_WRITE. The data goes straight into the pages.
    func write(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let range = commandRange(cmd) else { return .EINVAL }
        var start = range.start
        let end = range.end
        let bounce: DmirrorBounce
        switch bounceInit(start, range.size) {
        case .success(let b): bounce = b
        case .failure(let e): return e
        }
        guard let user = userPointer(cmd.ptr) else { return .EFAULT }
        bounce.ptr.copyMemory(from: user, byteCount: bounce.size)
        defer { cmd.cpages = bounce.cpages }
        while true {
            let ret = mutex.withLock { doWrite(start, end, bounce) }
            if ret != .ENOENT { return ret }
            start = cmd.addr + (bounce.cpages << pageShift)
            if let e = fault(start, end, write: true, unlocked: false) { return e }
            cmd.faults += 1
        }
    }
}
