import ABI

// fs/proc/task_mmu.c: /proc/self/pagemap.

extension MMStruct {
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
