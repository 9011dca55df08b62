import ABI

// arch/x86/mm/fault.c: a user-mode access. The simulated MMU translates page
// by page (the TLB fill), and where it misses, do_user_addr_fault() checks
// the VMA and calls handle_mm_fault(); an access the kernel refuses is a
// fatal signal for the task.

extension MMStruct {
    /// The TLB fill: bytes reachable at `addr` without a fault. Caller holds `ptl`.
    func translate(_ addr: UInt64, write: Bool) -> (UnsafeMutableRawPointer, Int)? {
        let pmdStart = addr & ~UInt64(pmdSize - 1)
        switch pageTable.pmd(addr) {
        case .huge(let f, let w)?, .hugetlb(let f, let w)?:
            if write && !w { return nil }
            let offset = Int(addr - pmdStart)
            return (f.address(page: 0, pageSize: pageSize) + offset, pmdSize - offset)
        case .table(let t)?:
            guard case .present(let p, let w) = t.entries[pageTable.pteIndex(addr)], !write || w else { return nil }
            let inPage = Int(addr & UInt64(pageSize - 1))
            return (p.address(pageSize: pageSize) + inPage, pageSize - inPage)
        default:
            return nil
        }
    }

    /// The CPU reads or writes `count` bytes at `address`, page by page in ascending
    /// order, calling `copy(offset, bytes, n)` for each reachable run. Nil when the
    /// access completed; else the signal the kernel sends (SIGSEGV: no VMA or no
    /// permission; SIGBUS: the fault handler gave up).
    ///
    /// A hit takes no lock, as the MMU's walk takes none: only the running task
    /// touches the page table, so it holds still up to the next scheduling point.
    /// The VMA's protection is checked on hits too, standing in for the PTE bits a
    /// PROT_NONE mprotect() would clear. A miss is do_user_addr_fault(): mmap_lock
    /// for read around the VMA lookup and handle_mm_fault().
    func userAccess(_ address: UInt64, _ count: Int, write: Bool,
                    _ copy: (Int, UnsafeMutableRawPointer, Int) -> Void) -> Signal? {
        var done = 0
        while done < count {
            let addr = address + UInt64(done)
            guard let vma = vmaLookup(addr), allows(vma, write: write) else { return .segv }
            if let (page, avail) = translate(addr, write: write) {
                let n = min(avail, count - done)
                copy(done, page, n)
                done += n
                // Another task may run between two pages of one access, as on a real CPU.
                if done < count { kernel.scheduler.point() }
                continue
            }
            mmapLock.readLock()
            guard let vma = vmaLookup(addr), allows(vma, write: write) else {
                mmapLock.readUnlock()
                return .segv
            }
            switch handleMMFault(vma, addr, write ? [.write, .user, .allowRetry] : [.user, .allowRetry]) {
            case .done, .oom:
                mmapLock.readUnlock()
            case .retry:
                // VM_FAULT_RETRY: the fault dropped mmap_lock (userfaultfd waited); the access is retried.
                break
            case .sigbus:
                mmapLock.readUnlock()
                return .bus
            case .sigsegv:
                mmapLock.readUnlock()
                return .segv
            }
        }
        return nil
    }

    /// access_error(): a write needs VM_WRITE; a read needs only vma_is_accessible(), since an
    /// x86 PTE that is present is readable (a PROT_WRITE-only mapping loads fine).
    private func allows(_ vma: VMArea, write: Bool) -> Bool {
        write ? vma.flags.contains(.write) : vma.isAccessible
    }
}

// page_fault_oops(): a kernel-mode access to an address with nothing behind it.

extension SimKernel {
    /// A kernel `access` ("read" or "write") in `caller` through the direct-map address
    /// of device-private `page`. The kernel oopses and kills the task with its locks
    /// still held (make_task_dead()); the lab ends a boot there, and the simulator ends
    /// the run: the report is final, as a deadlock's is.
    func pageFaultOops(_ page: PageRef, access: String, caller: StaticString) -> Never {
        let report = """
            BUG: unable to handle page fault for the direct-map address of PFN 0x\(String(page.pfn, radix: 16))
              #PF: supervisor \(access) access in kernel mode
              RIP: \(caller)
              the PFN is a device-private page (MEMORY_DEVICE_PRIVATE): no RAM is behind it
            """
        checkers.add(.oops, report)
        scheduler.endRun(report)
    }
}
