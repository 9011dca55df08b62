import ABI

/// HMM_PFN_* output flags.
struct HMMPfnFlags: OptionSet {
    let rawValue: UInt8
    static let valid = HMMPfnFlags(rawValue: 1 << 0)   // HMM_PFN_VALID
    static let write = HMMPfnFlags(rawValue: 1 << 1)   // HMM_PFN_WRITE
    static let error = HMMPfnFlags(rawValue: 1 << 2)   // HMM_PFN_ERROR
}

/// One element of range->hmm_pfns: the page, its flags and hmm_pfn_to_map_order().
struct HMMPfn {
    var page: PageRef?
    var flags: HMMPfnFlags = []
    var mapOrder: Int = 0
}

/// struct hmm_range.
final class HMMRange {
    let notifier: MMUIntervalNotifier
    var start: UInt64
    var end: UInt64
    var hmmPfns: [HMMPfn]
    /// HMM_PFN_REQ_FAULT in default_flags.
    let requestFault: Bool
    /// HMM_PFN_REQ_WRITE in default_flags.
    let requestWrite: Bool
    /// dev_private_owner.
    let devPrivateOwner: AnyObject?
    /// HMM_PFN_REQ_MIGRATE, of the migrate-on-fault series (in no release): the walk
    /// that faults the range in also collects its system pages for migration to
    /// devPrivateOwner's memory, into `migrate`.
    let requestMigrate: Bool
    /// What a migrating walk collected (migrate_hmm_range_setup()); the caller
    /// goes on with migrate_vma_pages() and finalizes it.
    var migrate: MigrateVMA?
    var notifierSeq: UInt64 = 0

    init(notifier: MMUIntervalNotifier, start: UInt64, end: UInt64, pageShift: Int,
         requestFault: Bool, requestWrite: Bool, devPrivateOwner: AnyObject?, requestMigrate: Bool = false) {
        self.notifier = notifier
        self.start = start
        self.end = end
        self.hmmPfns = Array(repeating: HMMPfn(), count: Int((end - start) >> UInt64(pageShift)))
        self.requestFault = requestFault
        self.requestWrite = requestWrite
        self.devPrivateOwner = devPrivateOwner
        self.requestMigrate = requestMigrate
    }
}

/// What one walk of the range found.
private enum HMMWalkResult {
    case done
    case failed(Errno)
    /// hmm_record_fault(): [addr, end) needs handle_mm_fault.
    case fault(UInt64, UInt64, write: Bool)
    /// A migration entry at this address: wait for it to go and re-walk (-EBUSY).
    case busy(UInt64)
}

extension MMStruct {
    /// hmm_range_fault() (`locked == nil`) or the lock-dropping variant used by
    /// hmm_range_fault_unlocked_timeout(). The caller holds mmap_lock for read;
    /// if a fault dropped it, `locked` is set to false and -EBUSY returned.
    func hmmRangeFault(_ range: HMMRange, locked: UnsafeMutablePointer<Bool>? = nil) -> Errno? {
        // The migrate-on-fault core patch: a migrating call holds mmap_lock throughout
        // (no lock drop) and starts from cleared pfns.
        if range.requestMigrate {
            if locked != nil { return .EINVAL }
            range.hmmPfns = Array(repeating: HMMPfn(), count: range.hmmPfns.count)
            range.migrate = nil
        }
        var last = range.start
        while true {
            if range.notifier.checkRetry(range.notifierSeq) { return .EBUSY }
            // Each pass is one walk_page_range(): a fault ends the pass, and the next
            // pass starts where it stopped.
            kernel.pageWalks += 1
            switch hmmWalk(range, from: last) {
            case .done:
                if range.requestMigrate { return migrateHMMRangeSetup(range) }
                return nil
            case .failed(let e):
                return e
            case .busy(let addr):
                migrationEntryWait(addr)
                kernel.scheduler.retried("hmm_range_fault() waits out a migration entry at 0x\(String(addr, radix: 16))")
                continue
            case .fault(let addr, let end, let write):
                last = addr
                // hmm_do_fault()
                guard let vma = vmaLookup(addr) else { return .EFAULT }
                var flags: FaultFlags = [.remote]
                if locked != nil { flags.insert(.allowRetry) }
                if write {
                    guard vma.flags.contains(.write) else { return .EPERM }
                    flags.insert(.write)
                }
                var a = addr
                while a < end {
                    let result = handleMMFault(vma, a, flags)
                    if case .retry = result {
                        locked?.pointee = false
                        return .EBUSY
                    }
                    if let e = result.errno { return e }
                    a += UInt64(pageSize)
                }
            }
        }
    }

    /// migrate_hmm_range_setup(): the last pass of a migrating walk also collects the
    /// range's system pages for migration (as one walk, so it counts none of its own).
    /// The MIGRATE invalidation it sends is owned by the device: a driver that does
    /// not filter its own migrations sees its sequence move every time.
    private func migrateHMMRangeSetup(_ range: HMMRange) -> Errno? {
        guard let owner = range.devPrivateOwner, let vma = vmaLookup(range.start), range.end <= vma.end else {
            return .EINVAL
        }
        let args = MigrateVMA(mm: self, vma: vma, start: range.start, end: range.end, pgmapOwner: owner,
                              flags: [.system])
        collectAndUnmap(args)
        range.migrate = args
        return nil
    }

    /// hmm_pte_need_fault(): nil if no fault is needed, else whether it is a write fault.
    @inline(__always)
    private func needFault(_ range: HMMRange, _ cpu: HMMPfnFlags) -> Bool? {
        guard range.requestFault else { return nil }
        if range.requestWrite && !cpu.contains(.write) { return true }
        if !cpu.contains(.valid) { return false }
        return nil
    }

    /// walk_page_range() with hmm_walk_ops, from `from` to range.end.
    private func hmmWalk(_ range: HMMRange, from: UInt64) -> HMMWalkResult {
        let pageSize = UInt64(self.pageSize)
        let pmdSize = UInt64(self.pmdSize)
        var addr = from
        func index(_ a: UInt64) -> Int { Int((a - range.start) >> UInt64(pageShift)) }
        func fill(_ s: UInt64, _ e: UInt64, _ flags: HMMPfnFlags) {
            for i in index(s)..<index(e) { range.hmmPfns[i] = HMMPfn(page: nil, flags: flags) }
        }
        while addr < range.end {
            guard let vma = vmas.first(where: { $0.end > addr }), vma.start < range.end else {
                // hmm_vma_walk_hole() without a vma
                if needFault(range, []) != nil { return .failed(.EFAULT) }
                fill(addr, range.end, .error)
                return .done
            }
            if vma.start > addr {
                if needFault(range, []) != nil { return .failed(.EFAULT) }
                fill(addr, vma.start, .error)
                addr = vma.start
                continue
            }
            let vmaEnd = min(vma.end, range.end)
            // hmm_vma_walk_test()
            if !vma.flags.contains(.read) || !vma.flags.isDisjoint(with: [.io, .pfnmap]) {
                if needFault(range, []) != nil { return .failed(.EFAULT) }
                fill(addr, vmaEnd, .error)
                addr = vmaEnd
                continue
            }
            while addr < vmaEnd {
                let pmdStart = addr & ~(pmdSize - 1)
                let segEnd = min(pmdStart + pmdSize, vmaEnd)
                // cond_resched() between page tables of the walk.
                kernel.scheduler.point("cond_resched")
                ptl.lock()
                let pmd = pageTable.pmd(addr)
                switch pmd {
                case nil:
                    ptl.unlock()
                    if let w = needFault(range, []) { return .fault(addr, segEnd, write: w) }
                    fill(addr, segEnd, [])
                case .migration?:
                    ptl.unlock()
                    if needFault(range, []) != nil { return .busy(addr) }
                    fill(addr, segEnd, [])
                case .devicePrivate(let folio, let writable)?:
                    ptl.unlock()
                    if folio.pgmap?.owner === range.devPrivateOwner {
                        let cpu: HMMPfnFlags = writable ? [.valid, .write] : [.valid]
                        var a = addr
                        while a < segEnd {
                            range.hmmPfns[index(a)] = HMMPfn(page: PageRef(folio, Int((a - pmdStart) / pageSize)),
                                                             flags: cpu, mapOrder: pmdOrder)
                            a += pageSize
                        }
                    } else {
                        // hmm_vma_handle_absent_pmd()
                        if let w = needFault(range, []) { return .fault(addr, segEnd, write: w) }
                        fill(addr, segEnd, .error)
                    }
                case .huge(let folio, let writable)?, .hugetlb(let folio, let writable)?:
                    ptl.unlock()
                    let cpu: HMMPfnFlags = writable ? [.valid, .write] : [.valid]
                    if let w = needFault(range, cpu) { return .fault(addr, segEnd, write: w) }
                    var a = addr
                    while a < segEnd {
                        range.hmmPfns[index(a)] = HMMPfn(page: PageRef(folio, Int((a - pmdStart) / pageSize)),
                                                         flags: cpu, mapOrder: pmdOrder)
                        a += pageSize
                    }
                case .table(let table)?:
                    var a = addr
                    var result: HMMWalkResult? = nil
                    while a < segEnd {
                        let pte = table.entries[pageTable.pteIndex(a)]
                        var out = HMMPfn()
                        switch pte {
                        case .none:
                            if let w = needFault(range, []) { result = .fault(a, segEnd, write: w) }
                        case .devicePrivate(let page, let writable):
                            if page.folio.pgmap?.owner === range.devPrivateOwner {
                                out = HMMPfn(page: page, flags: writable ? [.valid, .write] : [.valid])
                            } else if let w = needFault(range, []) {
                                result = .fault(a, segEnd, write: w)
                            }
                        case .deviceExclusive:
                            if let w = needFault(range, []) { result = .fault(a, segEnd, write: w) }
                        case .migration:
                            if needFault(range, []) != nil { result = .busy(a) }
                        case .present(let page, let writable):
                            let cpu: HMMPfnFlags = writable ? [.valid, .write] : [.valid]
                            if let w = needFault(range, cpu) {
                                result = .fault(a, segEnd, write: w)
                            } else {
                                out = HMMPfn(page: page, flags: cpu)
                            }
                        }
                        if result != nil { break }
                        range.hmmPfns[index(a)] = out
                        a += pageSize
                    }
                    ptl.unlock()
                    if let result { return result }
                }
                addr = segEnd
            }
        }
        return .done
    }
}

extension MMStruct {
    /// hmm_range_fault_unlocked_timeout(): takes mmap_lock itself and lets a
    /// fault drop it (userfaultfd), refreshing the notifier sequence and
    /// walking again until the range is stable. A non-zero timeout bounds the
    /// retries after invalidations (-EBUSY once it is spent); a fault that
    /// dropped the lock made progress and restarts the budget. 0 retries forever.
    func hmmRangeFaultUnlockedTimeout(_ range: HMMRange, timeoutMilliseconds timeout: Int) -> Errno? {
        var deadline = 0
        var locked = false
        while true {
            if timeout != 0 && !locked { deadline = kernel.milliseconds + timeout }
            range.notifierSeq = range.notifier.readBegin()
            mmapLock.readLock()
            if timeout != 0 && kernel.milliseconds > deadline {
                mmapLock.readUnlock()
                return .EBUSY
            }
            locked = true
            let ret = hmmRangeFault(range, locked: &locked)
            if locked { mmapLock.readUnlock() }
            if ret != .EBUSY { return ret }
            kernel.scheduler.retried("hmm_range_fault_unlocked_timeout() of [0x\(String(range.start, radix: 16)), 0x\(String(range.end, radix: 16)))")
        }
    }
}
