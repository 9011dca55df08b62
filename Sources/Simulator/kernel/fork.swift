import ABI

// kernel/fork.c: mm_users (mmget_not_zero, mmput) and dup_mmap().

extension MMStruct {
    /// mmget_not_zero().
    func mmgetNotZero() -> Bool {
        usersLock.withLock {
            guard users > 0 else { return false }
            users += 1
            return true
        }
    }

    /// mmput().
    func mmput() {
        let last = usersLock.withLock { () -> Bool in
            users -= 1
            return users == 0
        }
        if last { exitMmap() }
    }


    /// dup_mmap(): the child's address space. Private writable mappings are
    /// copy-on-write (both sides write-protected), device-private entries are
    /// copied read-only, device-exclusive entries are restored first, shared
    /// mappings share their pages through their page cache, their page tables
    /// left empty. Caller holds this mm's mmap_lock for write.
    func dupMmap() -> MMStruct {
        let child = MMStruct(kernel: kernel)
        let pageSize = UInt64(self.pageSize)
        let pmdSize = UInt64(self.pmdSize)
        for vma in vmas {
            let copy = vma.copy()
            // Without UFFD_FEATURE_EVENT_FORK the child does not inherit the registration.
            copy.userfaultfd = nil
            copy.flags.remove(.uffdMissing)
            // hugetlb_dup_vma_private(): the child's copy of a private hugetlb VMA does not own
            // the reservation (only the parent may take pages back from the other).
            copy.hugetlbResvMap = nil
            copy.hugetlbResv = []
            child.vmas.append(copy)
            // vma_needs_copy(): copy_page_range() copies only what a fault cannot make again,
            // the page tables of a VMA with an anon_vma (private pages) or VM_PFNMAP/VM_MIXEDMAP
            // (the device file's inserted pages). A shared mapping's child finds its pages in
            // the page cache at its first fault.
            guard !vma.flags.isDisjoint(with: [.pfnmap, .mixedmap]) || hasAnonVMA(vma) else { continue }
            let cow = vma.isCOWMapping
            let body = {
                self.ptl.withLock {
                    var addr = vma.start
                    while addr < vma.end {
                        let pmdStart = addr & ~(pmdSize - 1)
                        let segEnd = min(pmdStart + pmdSize, vma.end)
                        defer { addr = segEnd }
                        guard let entry = self.pageTable.pmd(addr) else { continue }
                        switch entry {
                        case .table(let table):
                            var a = addr
                            while a < segEnd {
                                let i = self.pageTable.pteIndex(a)
                                var pte = table.entries[i]
                                if case .deviceExclusive(let p, let w) = pte {
                                    // try_restore_exclusive_pte()
                                    pte = .present(p, writable: w)
                                    self.pageTable.setPTE(a, pte)
                                }
                                if !pte.isNone {
                                    if cow, pte.isWritable {
                                        pte = pte.wrprotected()
                                        self.pageTable.setPTE(a, pte)
                                    }
                                    child.pageTable.setPTE(a, pte)
                                }
                                a += pageSize
                            }
                        default:
                            var e = entry
                            if cow, entry.isWritable {
                                e = entry.wrprotected()
                                self.pageTable.setPMD(pmdStart, e)
                            }
                            child.pageTable.setPMD(pmdStart, e)
                        }
                    }
                }
            }
            if cow {
                // copy_page_range() write-protects under MMU_NOTIFY_PROTECTION_PAGE,
                // copy_hugetlb_page_range() under MMU_NOTIFY_CLEAR.
                withInvalidation(vma.isHugetlb ? .clear : .protectionPage, vma.start, vma.end, body)
            } else {
                body()
            }
        }
        return child
    }
}
