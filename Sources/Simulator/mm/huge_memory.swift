import ABI

// mm/huge_memory.c: PMD-mapped THPs, the huge zero folio, splitting a PMD into PTEs.

extension MMStruct {
    /// split_huge_pmd_address(): if a huge PMD maps across `addr`, split it to PTEs.
    func splitHugePMDAddress(_ addr: UInt64) {
        let pmdStart = addr & ~UInt64(pmdSize - 1)
        guard pmdStart != addr else { return }
        guard let entry = ptl.withLock({ pageTable.pmd(addr) }) else { return }
        switch entry {
        case .huge, .devicePrivate:
            withInvalidation(.clear, pmdStart, pmdStart + UInt64(pmdSize)) {
                ptl.withLock { splitHugePMDLocked(pmdStart) }
            }
        default: return
        }
    }

    /// __split_huge_pmd_locked(): one PMD mapping becomes PTRS_PER_PTE PTEs
    /// (the huge zero folio becomes zero-page PTEs). Caller holds `ptl` and
    /// has issued the invalidation.
    func splitHugePMDLocked(_ pmdStart: UInt64) {
        guard let entry = pageTable.pmd(pmdStart) else { return }
        let table = PTETable(count: pageTable.ptrsPerPTE)
        switch entry {
        case .huge(let folio, let writable):
            if folio.kind == .hugeZero {
                let zero = kernel.zeroFolio
                for i in 0..<table.entries.count {
                    zero.get()
                    table.entries[i] = .present(PageRef(zero, 0), writable: false)
                }
            } else {
                for i in 0..<table.entries.count {
                    folio.get()
                    table.entries[i] = .present(PageRef(folio, i), writable: writable)
                }
            }
        case .devicePrivate(let folio, let writable):
            for i in 0..<table.entries.count {
                folio.get()
                table.entries[i] = .devicePrivate(PageRef(folio, i), writable: writable)
            }
        case .migration(let folio, let writable):
            for i in 0..<table.entries.count {
                folio.get()
                table.entries[i] = .migration(PageRef(folio, i), writable: writable)
            }
        case .table, .hugetlb:
            return
        }
        pageTable.setPMD(pmdStart, .table(table))
    }

    /// thp_vma_allowable_order() for a PMD-sized anonymous folio at `haddr`.
    func thpAllowed(_ vma: VMArea, _ haddr: UInt64, collapse: Bool = false) -> Bool {
        guard vma.isAnonymous, !vma.flags.contains(.nohugepage), vma.userfaultfd == nil else { return false }
        guard haddr >= vma.start, haddr + UInt64(pmdSize) <= vma.end else { return false }
        if collapse { return true }
        switch kernel.configuration.thpEnabled {
        case .always: return true
        case .madvise: return vma.flags.contains(.hugepage)
        case .never: return false
        }
    }

    /// Splits the huge PMD at `haddr` with its invalidation.
    func splitHugePMDAddressForce(_ haddr: UInt64) {
        withInvalidation(.clear, haddr, haddr + UInt64(pmdSize)) {
            ptl.withLock { splitHugePMDLocked(haddr) }
        }
    }

    /// do_huge_pmd_anonymous_page(): the huge zero folio for a read, a new THP for a
    /// write. Called with the page table lock held; releases it.
    func doHugePMDAnonymousPage(_ vma: VMArea, _ haddr: UInt64, write: Bool) -> VMFault {
        if !write {
            pageTable.setPMD(haddr, .huge(kernel.hugeZeroFolio, writable: false))
        } else {
            let folio = kernel.allocFolio(.anon, order: pmdOrder)
            pageTable.setPMD(haddr, .huge(folio, writable: vma.flags.contains(.write)))
        }
        ptl.unlock()
        return .done
    }

    /// do_huge_pmd_wp_page(): a write to a read-only PMD. The huge zero folio is
    /// replaced by a new THP, an exclusive anonymous THP is reused, anything else
    /// is split so the PTE-level COW handles it. True when the fault is resolved.
    func doHugePMDWpPage(_ vma: VMArea, _ haddr: UInt64, _ folio: Folio) -> Bool {
        if folio.kind == .hugeZero {
            return withInvalidation(.clear, haddr, haddr + UInt64(pmdSize)) { () -> Bool in
                ptl.withLock {
                    guard case .huge(let f, _)? = pageTable.pmd(haddr), f === folio else { return false }
                    pageTable.setPMD(haddr, .huge(kernel.allocFolio(.anon, order: pmdOrder), writable: true))
                    return true
                }
            }
        }
        if folio.kind == .anon && folio.mapcount.load(ordering: .relaxed) == 1 {
            ptl.withLock {
                if case .huge(let f, _)? = pageTable.pmd(haddr), f === folio {
                    pageTable.setPMD(haddr, .huge(folio, writable: true))
                }
            }
            return true
        }
        splitHugePMDAddressForce(haddr)
        return false
    }
}
