import ABI

// mm/hugetlb.c: the default hstate's pool, the hugetlbfs page cache of a
// mapping's file, hugetlb_fault() (hugetlb_no_page() and hugetlb_wp()), and
// the private mapping's reservation owner who may take a page back from its
// children (unmap_ref_private()). Huge pages are mapped at the PMD level here
// (the default hstate is the PMD size).

/// The default hstate's pool: nr_hugepages, free_huge_pages and resv_huge_pages.
/// A reservation promises one of the free pages to a mapping (hugetlb_reserve_pages() at
/// mmap); an allocation with a reservation takes a free page and the promise, one without
/// needs a free page nobody was promised (available_huge_pages()).
///
/// `@unchecked Sendable`: counters protected by `lock`.
final class HugetlbPool: @unchecked Sendable {
    private let lock = HostLock()
    private(set) var total: Int
    private var free: Int
    private var reserved = 0
    let pageSize: Int
    let hugePageSize: Int

    init(pages: Int, pageSize: Int, hugePageSize: Int) {
        total = pages
        free = pages
        self.pageSize = pageSize
        self.hugePageSize = hugePageSize
    }

    var order: Int { (hugePageSize / pageSize).trailingZeroBitCount }

    /// free_huge_pages (reserved pages included, as /sys/.../free_hugepages shows them).
    var freePages: Int { lock.withLock { free } }

    /// available_huge_pages(): free pages no reservation holds.
    var availablePages: Int { lock.withLock { free - reserved } }

    /// Raise nr_hugepages to at least `count` free pages.
    func reserve(_ count: Int) -> Bool {
        lock.withLock {
            if free < count {
                total += count - free
                free = count
            }
            return true
        }
    }

    /// hugetlb_acct_memory(): take `delta` reservations (ENOMEM when the free pages nobody
    /// was promised are too few: gather_surplus_pages() finds no surplus to add, since
    /// nr_overcommit_hugepages is 0), or give `-delta` back.
    func account(_ delta: Int) -> Bool {
        lock.withLock {
            if delta > 0 && reserved + delta > free { return false }
            reserved += delta
            return true
        }
    }

    /// alloc_hugetlb_folio()'s dequeue: a zeroed huge folio (folio_zero_user()), taking a
    /// reservation if the caller has one; nil when there is no page for it (-ENOSPC, which
    /// a fault turns into VM_FAULT_SIGBUS).
    func allocate(anon: Bool, useReservation: Bool) -> Folio? {
        let ok = lock.withLock { () -> Bool in
            if useReservation && reserved > 0 {
                reserved -= 1
            } else if free - reserved <= 0 {
                return false
            }
            free -= 1
            return true
        }
        guard ok else { return nil }
        let folio = Folio(kind: .hugetlb, order: order, pageSize: pageSize)
        folio.hugetlbPool = self
        folio.hugetlbAnon = anon
        return folio
    }

    /// free_huge_folio().
    func release() {
        lock.withLock { free += 1 }
    }
}

/// HPAGE_RESV_* in a private hugetlb VMA's vm_private_data.
struct HugetlbResvFlags: OptionSet, Sendable {
    let rawValue: UInt8
    /// HPAGE_RESV_OWNER: the VMA mmap() made (the reservation's owner); fork's copy is not.
    static let owner = HugetlbResvFlags(rawValue: 1 << 0)
    /// HPAGE_RESV_UNMAPPED: the owner took a page back (unmap_ref_private()); a fault here is SIGBUS.
    static let unmapped = HugetlbResvFlags(rawValue: 1 << 1)
}

/// struct resv_map of a private mapping, shared by the pieces a split makes of its VMA:
/// for a private mapping the map records the file pages whose reservation was used
/// (vma_commit_reservation()); the rest are still promised to the owner.
///
/// `@unchecked Sendable`: changed only under mmap_lock and the page table lock.
final class HugetlbResvMap: @unchecked Sendable {
    var consumed: Set<UInt64> = []
}

/// The inode of a hugetlbfs file (for MAP_HUGETLB, the unlinked one hugetlb_file_setup()
/// creates): i_size, the page cache that MAP_SHARED mappings fault their pages from, so
/// the pages outlive their mappings (MADV_DONTNEED, a fork child, munmap of one of two
/// mappings) until the inode goes, and the inode's reservation map (the file pages a
/// shared mapping reserved). Private mappings never put pages in it.
///
/// `@unchecked Sendable`: `pages` and `reserved` are protected by `lock` (the mapping's
/// i_pages lock, the resv_map lock).
final class HugetlbInode: @unchecked Sendable {
    private let lock = HostLock()
    /// The page cache, by huge page index.
    private var pages: [UInt64: Folio] = [:]
    /// inode_resv_map(): the file pages reserved by shared mappings.
    private var reserved: Set<UInt64> = []
    /// i_size in huge pages.
    let hugePages: UInt64
    private weak var pool: HugetlbPool?

    init(hugePages: UInt64, pool: HugetlbPool) {
        self.hugePages = hugePages
        self.pool = pool
    }

    /// hugetlbfs_evict_inode(): remove_inode_hugepages() frees the cached pages, then
    /// hugetlb_unreserve_pages() gives back the reservations no page used.
    deinit {
        let unused = reserved.subtracting(pages.keys).count
        if unused > 0 { _ = pool?.account(-unused) }
    }

    /// filemap_lock_hugetlb_folio(): the cached folio at `index`, if any.
    func lookup(_ index: UInt64) -> Folio? {
        lock.withLock { pages[index] }
    }

    /// hugetlb_add_to_page_cache(); a folio already there wins (-EEXIST), and is returned.
    func add(_ folio: Folio, at index: UInt64) -> Folio {
        lock.withLock {
            if let present = pages[index] { return present }
            pages[index] = folio
            return folio
        }
    }

    /// region_chg() then region_add() of a shared mapping's hugetlb_reserve_pages(): the
    /// file pages of [from, to) not reserved yet are reserved now, if the pool has them.
    func reserve(_ from: UInt64, _ to: UInt64) -> Bool {
        lock.withLock {
            let new = (from..<to).filter { !reserved.contains($0) }
            guard let pool, pool.account(new.count) else { return false }
            reserved.formUnion(new)
            return true
        }
    }

    /// vma_needs_reservation() for a shared mapping: a reserved file page has its page promised.
    func isReserved(_ index: UInt64) -> Bool {
        lock.withLock { reserved.contains(index) }
    }
}

extension MMStruct {
    var hugetlbPageSize: UInt64 { UInt64(kernel.configuration.hugetlbPageSize) }

    /// vma_hugecache_offset(): the huge page index of `address` in the VMA's file.
    func hugetlbIndex(_ vma: VMArea, _ address: UInt64) -> UInt64 {
        vma.filePageIndex(address, pageShift: pageShift) >> UInt64(kernel.hugetlbPool.order)
    }

    /// hugetlb_reserve_pages() at mmap: a shared mapping reserves the file pages its inode
    /// has not reserved yet, a private one all of its own (and becomes their owner).
    func hugetlbReservePages(_ vma: VMArea) -> Bool {
        guard let inode = vma.hugetlbFile else { return true }
        let from = hugetlbIndex(vma, vma.start), to = hugetlbIndex(vma, vma.end)
        if vma.isShared { return inode.reserve(from, to) }
        guard kernel.hugetlbPool.account(Int(to - from)) else { return false }
        vma.hugetlbResvMap = HugetlbResvMap()
        vma.hugetlbResv = .owner
        return true
    }

    /// hugetlb_vm_op_close(): a private owner's VMA goes; the reservations of its pages
    /// that no fault used go back to the pool.
    func hugetlbVMAClose(_ vma: VMArea) {
        guard vma.hugetlbResv.contains(.owner), let map = vma.hugetlbResvMap else { return }
        let from = hugetlbIndex(vma, vma.start), to = hugetlbIndex(vma, vma.end)
        let unused = (from..<to).filter { !map.consumed.contains($0) }.count
        if unused > 0 { _ = kernel.hugetlbPool.account(-unused) }
    }

    /// clear_vma_resv_huge_pages() (fixup_hugetlb_reservations()): the VMA's reservations
    /// went with its copy (mremap): it owns nothing any more.
    func hugetlbClearReservations(_ vma: VMArea) {
        vma.hugetlbResvMap = nil
        vma.hugetlbResv.remove(.owner)
    }

    /// Whether alloc_hugetlb_folio() would use a reservation for file page `index`
    /// (vma_needs_reservation() says none is needed): a shared mapping's reserved page, a
    /// private owner's page not yet used. A fork child, or the owner copying a page for
    /// itself (cow_from_owner), has none.
    private func hugetlbHasReservation(_ vma: VMArea, _ index: UInt64, cowFromOwner: Bool) -> Bool {
        if cowFromOwner { return false }
        if vma.isShared { return vma.hugetlbFile?.isReserved(index) ?? false }
        guard vma.hugetlbResv.contains(.owner), let map = vma.hugetlbResvMap else { return false }
        return !map.consumed.contains(index)
    }

    /// alloc_hugetlb_folio(): a new huge folio for file page `index`, with the caller's
    /// reservation if it has one, else from the free pages nobody was promised;
    /// vma_commit_reservation() marks a private owner's page as used.
    func hugetlbAllocFolio(_ vma: VMArea, _ index: UInt64, cowFromOwner: Bool = false) -> Folio? {
        let use = hugetlbHasReservation(vma, index, cowFromOwner: cowFromOwner)
        guard let folio = kernel.hugetlbPool.allocate(anon: !vma.isShared, useReservation: use) else { return nil }
        if !cowFromOwner, !vma.isShared, let map = vma.hugetlbResvMap { map.consumed.insert(index) }
        return folio
    }

    /// Whether hugetlbAllocFolio() would find a page (what a fault would do, asked without
    /// making it: the introspection's question).
    func hugetlbCanAllocate(_ vma: VMArea, _ index: UInt64) -> Bool {
        hugetlbHasReservation(vma, index, cowFromOwner: false) || kernel.hugetlbPool.availablePages > 0
    }

    /// hugetlb_no_page(): a fault on a missing entry. A shared mapping finds its page in
    /// the file's page cache or allocates it there; a private one gets a new anonymous
    /// page, writable at once for a write (hugetlb_wp() reuses a page mapped once).
    /// Caller holds mmap_lock.
    func hugetlbNoPage(_ vma: VMArea, _ address: UInt64, write: Bool) -> VMFault {
        let haddr = address & ~(hugetlbPageSize - 1)
        // The owner took the page back after failing to copy it for itself.
        if vma.hugetlbResv.contains(.unmapped) { return .sigbus }
        guard let inode = vma.hugetlbFile else { return .sigbus }
        let index = hugetlbIndex(vma, haddr)
        guard index < inode.hugePages else { return .sigbus }
        // __vmf_anon_prepare() for a private mapping's anonymous page.
        if !vma.isShared { ptl.withLock { if vma.anonVMA == nil { vma.anonVMA = AnonVMA() } } }
        let folio: Folio
        if vma.flags.contains(.shared) {
            if let cached = inode.lookup(index) {
                folio = cached
            } else {
                guard let new = hugetlbAllocFolio(vma, index) else { return .sigbus }
                folio = inode.add(new, at: index)
            }
        } else {
            guard let new = hugetlbAllocFolio(vma, index) else { return .sigbus }
            folio = new
        }
        ptl.withLock {
            // If the entry changed from under us, the fault is done (backout).
            guard pageTable.pmd(haddr) == nil else { return }
            // make_huge_pte(vma, folio, VM_SHARED); a private write does the COW at once, which
            // for a page mapped only here reuses it writable.
            let writable = vma.flags.contains(.write) && (vma.isShared || write)
            pageTable.setPMD(haddr, .hugetlb(folio, writable: writable))
        }
        return .done
    }

    /// hugetlb_wp(): a write to a write-protected huge page. A shared mapping makes it
    /// writable; an anonymous page mapped only here is reused; anything else is copied
    /// into a new page (under an MMU_NOTIFY_CLEAR of the huge page). When the pool has no
    /// page for the copy, the reservation owner takes the page back from the children
    /// that share it and reuses it; anyone else gets SIGBUS. Caller holds mmap_lock.
    func hugetlbWp(_ vma: VMArea, _ haddr: UInt64, _ old: Folio) -> VMFault {
        let sameEntry = { () -> Bool in
            if case .hugetlb(let f, false)? = self.pageTable.pmd(haddr) { return f === old }
            return false
        }
        if vma.flags.contains(.shared) || (old.hugetlbAnon && old.mapcount.load(ordering: .relaxed) == 1) {
            ptl.withLock {
                if sameEntry() { pageTable.setPMD(haddr, .hugetlb(old, writable: true)) }
            }
            return .done
        }
        // The owner of the reservation copies without it: the page it maps used it already.
        let cowFromOwner = vma.hugetlbResv.contains(.owner) && old.hugetlbAnon
        guard let new = hugetlbAllocFolio(vma, hugetlbIndex(vma, haddr), cowFromOwner: cowFromOwner) else {
            guard cowFromOwner else { return .sigbus }
            unmapRefPrivate(vma, haddr, old)
            // retry_avoidcopy: now mapped only here, the page is reused.
            return ptl.withLock { () -> VMFault in
                guard sameEntry() else { return .done }
                guard old.mapcount.load(ordering: .relaxed) == 1 else { return .sigbus }
                pageTable.setPMD(haddr, .hugetlb(old, writable: true))
                return .done
            }
        }
        new.address(page: 0, pageSize: pageSize).copyMemory(from: old.address(page: 0, pageSize: pageSize),
                                                            byteCount: Int(hugetlbPageSize))
        withInvalidation(.clear, haddr, haddr + hugetlbPageSize) {
            ptl.withLock {
                if sameEntry() { pageTable.setPMD(haddr, .hugetlb(new, writable: true)) }
            }
        }
        return .done
    }

    /// unmap_ref_private(): the owner of a private mapping could not copy the page at
    /// `haddr` for itself; every other VMA of the same file that maps the page there
    /// (its fork children's copies, which are not owners) loses it and is marked
    /// HPAGE_RESV_UNMAPPED, so their next fault on it is SIGBUS.
    private func unmapRefPrivate(_ vma: VMArea, _ haddr: UInt64, _ folio: Folio) {
        guard let inode = vma.hugetlbFile else { return }
        let index = hugetlbIndex(vma, haddr)
        for mm in kernel.liveMMs() {
            for other in mm.vmas where other !== vma && other.hugetlbFile === inode && !other.hugetlbResv.contains(.owner) {
                // The address of the same file page in that VMA, if it maps it.
                let first = other.pgoff >> UInt64(kernel.hugetlbPool.order)
                let count = other.length / hugetlbPageSize
                guard index >= first, index < first + count else { continue }
                let address = other.start + (index - first) * hugetlbPageSize
                mm.withInvalidation(.unmap, address, address + hugetlbPageSize) {
                    mm.ptl.withLock {
                        guard case .hugetlb(let f, _)? = mm.pageTable.pmd(address), f === folio else { return }
                        mm.pageTable.setPMD(address, nil)
                    }
                }
                other.hugetlbResv.insert(.unmapped)
            }
        }
    }
}
