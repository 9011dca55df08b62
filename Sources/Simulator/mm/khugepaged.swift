import ABI

// mm/khugepaged.c: MADV_COLLAPSE.

extension MMStruct {
    /// MADV_COLLAPSE (madvise_collapse()): each PMD-aligned range of an
    /// anonymous VMA mapped by PTEs of ordinary pages becomes one THP.
    func collapse(_ start: UInt64, _ end: UInt64) throws(Errno) {
        let pmdSize = UInt64(self.pmdSize)
        var failed = false
        for vma in vmas(in: start, end) {
            // collapse_possible(): thp_vma_allowable_orders() allows nothing in a VM_NO_KHUGEPAGED
            // VMA (VM_SPECIAL or hugetlb), whatever part of it the range covers.
            if vma.isHugetlb || !vma.flags.isDisjoint(with: .special) { throw .EINVAL }
            var haddr = (max(start, vma.start) + pmdSize - 1) & ~(pmdSize - 1)
            while haddr + pmdSize <= min(end, vma.end) {
                defer { haddr += pmdSize }
                guard thpAllowed(vma, haddr, collapse: true) else { failed = true; continue }
                let table: PTETable? = ptl.withLock {
                    if case .table(let t)? = pageTable.pmd(haddr) { return t }
                    return nil
                }
                guard let table else { continue }  // already huge (SCAN_PMD_MAPPED) or empty
                var collapsible = true
                for e in table.entries {
                    switch e {
                    case .none: break
                    case .present(let p, _) where p.folio.kind == .anon || p.folio.kind == .zero: break
                    default: collapsible = false
                    }
                }
                guard collapsible else { failed = true; continue }
                let folio = kernel.allocFolio(.anon, order: pmdOrder)
                withInvalidation(.clear, haddr, haddr + pmdSize) {
                    ptl.withLock {
                        guard case .table(let t)? = pageTable.pmd(haddr), t === table else { return }
                        for (i, e) in t.entries.enumerated() {
                            if case .present(let p, _) = e, p.folio.kind == .anon {
                                copyPage(to: PageRef(folio, i), from: p)
                            }
                        }
                        pageTable.setPMD(haddr, .huge(folio, writable: vma.flags.contains(.write)))
                    }
                }
            }
        }
        if failed { throw .EINVAL }
    }
}
