import ABI
import MachineInterface

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

    /// change_protection() removing write. Caller holds `ptl`.
    func wrprotectRangeLocked(_ start: UInt64, _ end: UInt64) {
        let pmdSize = UInt64(self.pmdSize)
        var addr = start
        while addr < end {
            let pmdStart = addr & ~(pmdSize - 1)
            let stop = min(end, pmdStart + pmdSize)
            if let entry = pageTable.pmd(addr) {
                if case .table(let t) = entry {
                    var a = addr
                    while a < stop {
                        let i = pageTable.pteIndex(a)
                        t.entries[i] = t.entries[i].wrprotected()
                        a += UInt64(pageSize)
                    }
                } else if entry.isWritable {
                    pageTable.setPMD(pmdStart, entry.wrprotected())
                }
            }
            addr = stop
        }
    }

    /// MADV_COLLAPSE (madvise_collapse()): each PMD-aligned range of an
    /// anonymous VMA mapped by PTEs of ordinary pages becomes one THP.
    func collapse(_ start: UInt64, _ end: UInt64) throws(Errno) {
        let pmdSize = UInt64(self.pmdSize)
        var failed = false
        for vma in vmas(in: start, end) {
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

    /// move_vma(): the VMA range moves to `target` with its page table
    /// entries (move_page_tables(): whole PMDs when both sides are PMD
    /// aligned, PTEs otherwise; device-private entries move like any other).
    func moveVMA(_ old: UInt64, _ oldLen: UInt64, to target: UInt64, _ newLen: UInt64, dontUnmap: Bool) {
        let moved = isolate(old, old + oldLen)
        guard let first = moved.first else { return }
        let len = min(oldLen, newLen)
        let newVMA = first.copy()
        newVMA.start = target
        newVMA.end = target + newLen
        splitHugePMDAddress(target)
        splitHugePMDAddress(target + len)
        insertVMA(newVMA)
        let pmdSize = UInt64(self.pmdSize)
        let pageSize = UInt64(self.pageSize)
        withInvalidation(.unmap, old, old + len) {
            ptl.withLock {
                var offset: UInt64 = 0
                while offset < len {
                    let src = old + offset, dst = target + offset
                    if src & (pmdSize - 1) == 0 && dst & (pmdSize - 1) == 0 && len - offset >= pmdSize {
                        // move_huge_pmd() / move_normal_pmd()
                        let entry = pageTable.pmds.removeValue(forKey: pageTable.pmdIndex(src))
                        if let stale = pageTable.pmds.removeValue(forKey: pageTable.pmdIndex(dst)) {
                            pageTable.pmds[pageTable.pmdIndex(dst)] = stale
                            pageTable.setPMD(dst, nil)
                        }
                        if let entry { pageTable.pmds[pageTable.pmdIndex(dst)] = entry }
                        offset += pmdSize
                        continue
                    }
                    // move_ptes()
                    switch pageTable.pmd(src) {
                    case .table?, nil: break
                    default: splitHugePMDLocked(src & ~(pmdSize - 1))
                    }
                    if case .table(let t)? = pageTable.pmd(src) {
                        let i = pageTable.pteIndex(src)
                        let pte = t.entries[i]
                        if !pte.isNone {
                            t.entries[i] = .none
                            if let dt = pageTable.pteTable(dst) {
                                let j = pageTable.pteIndex(dst)
                                let stale = dt.entries[j]
                                dt.entries[j] = pte
                                stale.page?.folio.put()
                            } else {
                                pte.page?.folio.put()
                            }
                        }
                    }
                    offset += pageSize
                }
            }
        }
        if dontUnmap {
            // MREMAP_DONTUNMAP: the old range stays mapped, now empty.
            return
        }
        vmas.removeAll { v in moved.contains { $0 === v } }
    }

    /// /proc/self/pagemap (pagemap_pmd_range/pte_to_pagemap_entry).
    func pagemapEntry(_ addr: UInt64) -> UInt64 {
        let present = Pagemap.present
        let swap = Pagemap.swap
        let file: UInt64 = 1 << 61
        let exclusive: UInt64 = 1 << 56
        guard vmaLookup(addr) != nil else { return 0 }
        return ptl.withLock {
            switch pageTable.pmd(addr) {
            case nil: return 0
            case .huge(let f, _)?, .hugetlb(let f, _)?:
                return present | (f.mapcount.load(ordering: .relaxed) == 1 ? exclusive : 0)
            case .devicePrivate?, .migration?:
                return swap
            case .table(let t)?:
                switch t.entries[pageTable.pteIndex(addr)] {
                case .none: return 0
                case .present(let p, _):
                    var e = present
                    if p.folio.kind == .pageCache { e |= file }
                    if p.folio.mapcount.load(ordering: .relaxed) == 1 { e |= exclusive }
                    return e
                case .devicePrivate, .deviceExclusive, .migration:
                    return swap
                }
            }
        }
    }
}
