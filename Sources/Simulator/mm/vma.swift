import ABI

// mm/vma.c: finding, splitting and merging VMAs. The caller holds mmap_lock
// (for write where the VMA list changes).

extension MMStruct {
    /// vma_lookup(): the VMA containing `addr`.
    func vmaLookup(_ addr: UInt64) -> VMArea? {
        var lo = 0, hi = vmas.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if vmas[mid].end <= addr { lo = mid + 1 } else { hi = mid }
        }
        guard lo < vmas.count, vmas[lo].start <= addr else { return nil }
        return vmas[lo]
    }

    /// The VMAs intersecting [start, end), in order.
    func vmas(in start: UInt64, _ end: UInt64) -> [VMArea] {
        vmas.filter { $0.start < end && start < $0.end }
    }

    func insertVMA(_ vma: VMArea) {
        let i = vmas.firstIndex { $0.start >= vma.end } ?? vmas.count
        vmas.insert(vma, at: i)
    }

    /// remove_vma(): the VMAs leave the tree, each closed (vm_ops->close: hugetlb_vm_op_close()).
    func removeVMAs(_ victims: [VMArea]) {
        for vma in victims where vma.isHugetlb { hugetlbVMAClose(vma) }
        vmas.removeAll { v in victims.contains { $0 === v } }
    }

    /// True if [start, end) is fully covered by VMAs.
    func isFullyMapped(_ start: UInt64, _ end: UInt64) -> Bool {
        var cursor = start
        for vma in vmas(in: start, end) {
            if vma.start > cursor { return false }
            cursor = vma.end
        }
        return cursor >= end
    }

    /// __split_vma() so that a VMA boundary lies at `addr`; also splits a huge
    /// PMD that straddles the new boundary (vma_adjust_trans_huge()). The VMA's
    /// vm_ops->may_split() may refuse: a hugetlb VMA splits only at a huge page
    /// boundary (hugetlb_vm_op_split(): EINVAL).
    func splitVMA(at addr: UInt64) throws(Errno) {
        guard let vma = vmaLookup(addr), vma.start < addr else { return }
        if vma.isHugetlb && addr & (hugetlbPageSize - 1) != 0 { throw .EINVAL }
        let tail = vma.copy()
        tail.start = addr
        tail.pgoff = vma.pgoff + ((addr - vma.start) >> UInt64(pageShift))
        vma.end = addr
        insertVMA(tail)
        splitHugePMDAddress(addr)
    }

    /// Splits VMAs so [start, end) is made of whole VMAs; returns them. The start is split
    /// first: when the end cannot be, that split stays, as in the kernel.
    func isolate(_ start: UInt64, _ end: UInt64) throws(Errno) -> [VMArea] {
        try splitVMA(at: start)
        try splitVMA(at: end)
        return vmas(in: start, end)
    }

    /// vma_merge(): after [start, end) changed, adjacent VMAs that are
    /// alike again (is_mergeable_vma() and is_mergeable_anon_vma(): same
    /// flags, file at a contiguous offset, userfaultfd context, and no two
    /// different anon_vmas) become one. Caller holds mmap_lock for write.
    func mergeVMAs(around start: UInt64, _ end: UInt64) {
        var i = max(0, (vmas.firstIndex { $0.end >= start } ?? vmas.count) - 1)
        while i + 1 < vmas.count, vmas[i].start <= end {
            let a = vmas[i], b = vmas[i + 1]
            if a.end == b.start && canMerge(a, b) {
                a.end = b.end
                if a.anonVMA == nil { a.anonVMA = b.anonVMA }
                vmas.remove(at: i + 1)
            } else {
                i += 1
            }
        }
    }

    private func canMerge(_ a: VMArea, _ b: VMArea) -> Bool {
        guard a.flags == b.flags, !a.isDeviceMapping, !b.isDeviceMapping, !a.isHugetlb,
              a.file === b.file, a.userfaultfd === b.userfaultfd else { return false }
        // vm_pgoff must continue (for anonymous VMAs: the address at mmap time, kept by mremap).
        if b.pgoff != a.pgoff + ((a.end - a.start) >> UInt64(pageShift)) { return false }
        // is_mergeable_anon_vma(): a VMA that mapped anonymous pages without
        // going through handle_mm_fault() (UFFDIO_COPY, device migration) has
        // one too: count any page table entry as one.
        let aAnon: AnyObject? = a.anonVMA ?? (hasEntries(a.start, a.end) ? a : nil)
        let bAnon: AnyObject? = b.anonVMA ?? (hasEntries(b.start, b.end) ? b : nil)
        guard let aAnon, let bAnon else { return true }
        return aAnon === bAnon
    }

    /// Whether the VMA has an anon_vma, as vma_needs_copy() asks: private pages were made in
    /// it. A private VMA that got pages without handle_mm_fault() (UFFDIO_COPY, a migration
    /// into a hole) has one in the kernel (anon_vma_prepare() on those paths too): any entry
    /// of a private VMA counts.
    func hasAnonVMA(_ vma: VMArea) -> Bool {
        vma.anonVMA != nil || (!vma.isShared && hasEntries(vma.start, vma.end))
    }

    /// Whether any page table entry in [start, end) is populated.
    func hasEntries(_ start: UInt64, _ end: UInt64) -> Bool {
        ptl.withLock {
            let pmdSize = UInt64(self.pmdSize)
            var addr = start
            while addr < end {
                let stop = min(end, (addr & ~(pmdSize - 1)) + pmdSize)
                switch pageTable.pmd(addr) {
                case nil: break
                case .table(let t)?:
                    var a = addr
                    while a < stop {
                        if !t.entries[pageTable.pteIndex(a)].isNone { return true }
                        a += UInt64(pageSize)
                    }
                default: return true
                }
                addr = stop
            }
            return false
        }
    }
}
