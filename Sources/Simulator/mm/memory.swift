#if canImport(Glibc)
import Glibc
#endif

/// FAULT_FLAG_* bits.
struct FaultFlags: OptionSet {
    let rawValue: UInt32
    static let write = FaultFlags(rawValue: 1 << 0)       // FAULT_FLAG_WRITE
    static let allowRetry = FaultFlags(rawValue: 1 << 2)  // FAULT_FLAG_ALLOW_RETRY
    static let user = FaultFlags(rawValue: 1 << 6)        // FAULT_FLAG_USER
    static let remote = FaultFlags(rawValue: 1 << 7)      // FAULT_FLAG_REMOTE
}

/// vm_fault_t, reduced to what callers act on.
enum VMFault {
    /// 0: the fault was handled (or there was nothing to do); mmap_lock still held.
    case done
    /// VM_FAULT_RETRY/COMPLETED: mmap_lock was dropped (userfaultfd waited).
    case retry
    /// VM_FAULT_OOM.
    case oom
    /// VM_FAULT_SIGBUS.
    case sigbus
    /// VM_FAULT_SIGSEGV.
    case sigsegv

    /// vm_fault_to_errno().
    var errno: Errno? {
        switch self {
        case .done, .retry: nil
        case .oom: .ENOMEM
        case .sigbus, .sigsegv: .EFAULT
        }
    }
}

import ABI

extension MMStruct {
    /// handle_mm_fault(): resolve one fault at `addr` in `vma`. The caller
    /// holds mmap_lock for read and has checked the VMA's access rights.
    func handleMMFault(_ vma: VMArea, _ addr: UInt64, _ flags: FaultFlags) -> VMFault {
        let write = flags.contains(.write)
        let address = addr & ~UInt64(pageSize - 1)
        let haddr = addr & ~UInt64(pmdSize - 1)
        if vma.isAnonymous || (vma.file != nil && !vma.isShared) {
            // anon_vma_prepare()
            ptl.withLock { if vma.anonVMA == nil { vma.anonVMA = AnonVMA() } }
        }
        while true {
            // __handle_mm_fault(): the PMD level first.
            ptl.lock()
            switch pageTable.pmd(address) {
            case nil:
                if vma.isHugetlb {
                    // hugetlb_fault() -> hugetlb_no_page()
                    ptl.unlock()
                    return hugetlbNoPage(vma, address, write: write)
                }
                if thpAllowed(vma, haddr) { return doHugePMDAnonymousPage(vma, haddr, write: write) }
            case .huge(let folio, let writable)?:
                ptl.unlock()
                if !write || writable { return .done }
                if doHugePMDWpPage(vma, haddr, folio) { return .done }
                continue
            case .hugetlb(let folio, let writable)?:
                ptl.unlock()
                // hugetlb_fault() -> hugetlb_wp() for a write to a write-protected page.
                if !write || writable { return .done }
                return hugetlbWp(vma, address & ~(hugetlbPageSize - 1), folio)
            case .devicePrivate(let folio, _)?:
                ptl.unlock()
                // do_huge_pmd_device_private(): migrate_to_ram with vmf->pte == NULL.
                let page = PageRef(folio, Int((address - haddr) >> UInt64(pageShift)))
                let result = folio.pgmap!.ops.migrateToRam(mm: self, vma: vma, address: address, page: page, ptMapped: false)
                if case .done = result { continue }
                return result
            case .migration?:
                ptl.unlock()
                migrationEntryWait(address)
                continue
            case .table?:
                break
            }

            // handle_pte_fault(), with the page table lock held.
            let pte = pageTable.pte(address)
            switch pte {
            case .none:
                return doPteMissing(vma, address, flags)  // releases ptl
            case .present(let page, let writable):
                ptl.unlock()
                if !write || writable { return .done }
                if doWpPage(vma, address, page) { return .done }
                continue
            case .devicePrivate, .deviceExclusive, .migration:
                ptl.unlock()
                if let result = doSwapPage(vma, address, pte) { return result }
                continue
            }
        }
    }

    /// do_swap_page() for the non-present entries the simulator has: a device-private
    /// page goes home through its pagemap's migrate_to_ram(), a device-exclusive entry
    /// is restored, a migration entry is waited on. Nil: the fault is to be retried.
    private func doSwapPage(_ vma: VMArea, _ address: UInt64, _ entry: PTE) -> VMFault? {
        switch entry {
        case .devicePrivate(let page, _):
            let result = page.folio.pgmap!.ops.migrateToRam(mm: self, vma: vma, address: address, page: page, ptMapped: true)
            if case .done = result { return nil }
            return result
        case .deviceExclusive(let page, _):
            removeDeviceExclusiveEntry(vma, address, page)
            return nil
        case .migration:
            migrationEntryWait(address)
            return nil
        case .none, .present:
            return nil
        }
    }

    /// migration_entry_wait(): another task is migrating the page at `address`; sleep
    /// until its entry is gone (migrate_vma_finalize() wakes the waiters).
    func migrationEntryWait(_ address: UInt64, _ site: StaticString = #function) {
        kernel.scheduler.wait(on: [kernel.migrationWaiters], site,
                              reason: "migration entry at 0x\(String(address, radix: 16))") {
            ptl.withLock {
                switch pageTable.pmd(address) {
                case .migration?: false
                case .table?:
                    if case .migration = pageTable.pte(address) { false } else { true }
                default: true
                }
            }
        }
    }

    /// do_pte_missing(): do_anonymous_page() or do_fault(). Called with `ptl` held; releases it.
    private func doPteMissing(_ vma: VMArea, _ address: UInt64, _ flags: FaultFlags) -> VMFault {
        let write = flags.contains(.write)
        if vma.isAnonymous {
            if vma.flags.contains(.uffdMissing), let ctx = vma.userfaultfd {
                ptl.unlock()
                return handleUserfault(ctx, address, flags)
            }
            if !write {
                pageTable.setPTE(address, .present(PageRef(kernel.zeroFolio, 0), writable: false))
            } else {
                let folio = kernel.allocFolio(.anon, order: 0)
                pageTable.setPTE(address, .present(PageRef(folio, 0), writable: true))
            }
            ptl.unlock()
            return .done
        }
        if let inode = vma.file {
            ptl.unlock()
            // do_read_fault()/do_cow_fault()/do_shared_fault() via shmem_fault().
            guard let cached = inode.getPage(vma.filePageIndex(address, pageShift: pageShift)) else { return .sigbus }
            let page = PageRef(cached, 0)
            return ptl.withLock { () -> VMFault in
                guard pageTable.pte(address).isNone else { return .done }
                if vma.isShared {
                    pageTable.setPTE(address, .present(page, writable: vma.flags.contains(.write)))
                } else if write {
                    let copy = kernel.allocFolio(.anon, order: 0, zeroed: false)
                    copyPage(to: PageRef(copy, 0), from: page)
                    pageTable.setPTE(address, .present(PageRef(copy, 0), writable: true))
                } else {
                    pageTable.setPTE(address, .present(page, writable: false))
                }
                return .done
            }
        }
        ptl.unlock()
        return .sigbus
    }

    /// do_wp_page(): a write to a present read-only PTE. Returns true when done.
    private func doWpPage(_ vma: VMArea, _ address: UInt64, _ page: PageRef) -> Bool {
        let folio = page.folio
        // wp_page_shared() / wp_page_reuse()
        let reuse = vma.isShared
            || ((folio.kind == .anon || folio.kind == .deviceCoherent) && folio.order == 0
                && folio.mapcount.load(ordering: .relaxed) == 1)
        if reuse {
            return ptl.withLock {
                guard case .present(let p, _) = pageTable.pte(address), p === page else { return false }
                pageTable.setPTE(address, .present(page, writable: true))
                return true
            }
        }
        // wp_page_copy()
        let newFolio = kernel.allocFolio(.anon, order: 0, zeroed: folio.isZeroPage)
        if !folio.isZeroPage { copyPage(to: PageRef(newFolio, 0), from: page) }
        return withInvalidation(.clear, address, address + UInt64(pageSize)) {
            ptl.withLock {
                guard case .present(let p, _) = pageTable.pte(address), p === page else { return false }
                pageTable.setPTE(address, .present(PageRef(newFolio, 0), writable: true))
                return true
            }
        }
    }

    /// remove_device_exclusive_entry(): the CPU touches a page a device holds exclusively.
    func removeDeviceExclusiveEntry(_ vma: VMArea, _ address: UInt64, _ page: PageRef) {
        withInvalidation(.clear, address, address + UInt64(pageSize), owner: self) {
            ptl.withLock {
                guard case .deviceExclusive(let p, let w) = pageTable.pte(address), p === page else { return }
                pageTable.setPTE(address, .present(page, writable: w))
            }
        }
    }

    /// zap_page_range(): clears every entry in [start, end). Caller holds `ptl`.
    func zapPageRangeLocked(_ start: UInt64, _ end: UInt64) {
        let pmdSize = UInt64(self.pmdSize)
        var addr = start
        while addr < end {
            let pmdStart = addr & ~(pmdSize - 1)
            let pmdEnd = pmdStart + pmdSize
            let stop = min(end, pmdEnd)
            if let entry = pageTable.pmd(addr) {
                if case .table(let table) = entry {
                    if addr == pmdStart && stop == pmdEnd {
                        pageTable.setPMD(addr, nil)
                    } else {
                        var a = addr
                        while a < stop {
                            let i = pageTable.pteIndex(a)
                            let old = table.entries[i]
                            table.entries[i] = .none
                            old.page?.folio.put()
                            a += UInt64(pageSize)
                        }
                    }
                } else if addr == pmdStart && stop == pmdEnd {
                    pageTable.setPMD(addr, nil)
                } else if case .hugetlb = entry {
                    // __unmap_hugepage_range() BUG_ON()s an unaligned range: every caller
                    // (munmap's split check, DONTNEED's rounding) gives whole huge pages.
                    preconditionFailure("zap of part of a hugetlb page at 0x\(String(addr, radix: 16))")
                } else {
                    splitHugePMDLocked(pmdStart)
                    continue
                }
            }
            addr = stop
        }
    }

    /// copy_highpage().
    @inline(__always)
    func copyPage(to dst: PageRef, from src: PageRef) {
        dst.address(pageSize: pageSize).copyMemory(from: src.address(pageSize: pageSize), byteCount: pageSize)
    }

    /// clear_highpage().
    @inline(__always)
    func clearPage(_ page: PageRef) {
        page.address(pageSize: pageSize).initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
    }
}
