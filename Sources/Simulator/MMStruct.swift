import ABI

/// struct mm_struct: one simulated address space.
///
/// Locking follows the kernel: `mmapLock` (mmap_lock, a real rw semaphore)
/// protects the VMA list; `ptl` (the page table lock) protects `pageTable`.
/// `@unchecked Sendable` because of exactly that discipline.
final class MMStruct: @unchecked Sendable {
    let kernel: SimKernel
    let mmapLock = RWSemaphore()
    let ptl = SimMutex()
    /// The VMAs, sorted by address (the maple tree).
    var vmas: [VMArea] = []
    var pageTable: PageTable
    let notifierSubscriptions = MMUNotifierSubscriptions()
    /// mm_users > 0 (mmget_not_zero() succeeds).
    private let usersLock = SimMutex()
    private var users = 1
    /// mmap_base: top-down allocation starts below it.
    let mmapBase: UInt64 = 0x7fff_f7e0_0000
    let mmapMin: UInt64 = 0x10000

    var pageSize: Int { kernel.configuration.pageSize }
    var pageShift: Int { kernel.pageShift }
    var pmdSize: Int { kernel.configuration.pmdSize }

    init(kernel: SimKernel) {
        self.kernel = kernel
        pageTable = PageTable(pageShift: kernel.pageShift, pmdShift: kernel.pmdShift)
    }

    // MARK: mm_users

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

    /// exit_mmap(): the process is gone; every mapping is torn down.
    private func exitMmap() {
        mmapLock.writeLock()
        withInvalidation(.release, 0, UInt64.max) {
            ptl.withLock {
                for vma in vmas { zapPageRangeLocked(vma.start, vma.end) }
                pageTable.pmds.removeAll()
            }
        }
        vmas.removeAll()
        mmapLock.writeUnlock()
    }

    // MARK: VMAs

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

    /// True if [start, end) is fully covered by VMAs.
    func isFullyMapped(_ start: UInt64, _ end: UInt64) -> Bool {
        var cursor = start
        for vma in vmas(in: start, end) {
            if vma.start > cursor { return false }
            cursor = vma.end
        }
        return cursor >= end
    }

    /// get_unmapped_area(): top-down search for a gap of `length` aligned to `align`.
    func getUnmappedArea(length: UInt64, align: UInt64) -> UInt64? {
        var ceiling = mmapBase
        for vma in vmas.reversed() where vma.start < ceiling {
            if ceiling >= vma.end, let fit = fit(below: ceiling, above: vma.end, length: length, align: align) {
                return fit
            }
            ceiling = min(ceiling, vma.start)
        }
        return fit(below: ceiling, above: mmapMin, length: length, align: align)
    }

    private func fit(below ceiling: UInt64, above floor: UInt64, length: UInt64, align: UInt64) -> UInt64? {
        guard ceiling >= length else { return nil }
        let candidate = (ceiling - length) & ~(align - 1)
        return candidate >= floor ? candidate : nil
    }

    /// split_vma() so that a VMA boundary lies at `addr`; also splits a huge
    /// PMD that straddles the new boundary (vma_adjust_trans_huge()).
    func splitVMA(at addr: UInt64) {
        guard let vma = vmaLookup(addr), vma.start < addr else { return }
        if vma.isHugetlb { return }
        let tail = vma.copy()
        tail.start = addr
        tail.pgoff = vma.pgoff + ((addr - vma.start) >> UInt64(pageShift))
        vma.end = addr
        insertVMA(tail)
        splitHugePMDAddress(addr)
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

    /// Whether any page table entry in [start, end) is populated.
    private func hasEntries(_ start: UInt64, _ end: UInt64) -> Bool {
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

    /// Splits VMAs so [start, end) is made of whole VMAs; returns them.
    func isolate(_ start: UInt64, _ end: UInt64) -> [VMArea] {
        splitVMA(at: start)
        splitVMA(at: end)
        return vmas(in: start, end)
    }

    // MARK: munmap / zap

    /// do_vmi_munmap(): removes [start, end).
    func doMunmap(_ start: UInt64, _ end: UInt64) {
        let victims = isolate(start, end)
        guard !victims.isEmpty else { return }
        withInvalidation(.unmap, start, end) {
            ptl.withLock { zapPageRangeLocked(start, end) }
        }
        vmas.removeAll { v in victims.contains { $0 === v } }
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
                } else {
                    splitHugePMDLocked(pmdStart)
                    continue
                }
            }
            addr = stop
        }
    }

    // MARK: THP helpers

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

    // MARK: Page copies

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
