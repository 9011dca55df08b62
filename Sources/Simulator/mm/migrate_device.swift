import ABI

/// MIGRATE_PFN_* flags.
struct MigratePfnFlags: OptionSet {
    let rawValue: UInt8
    static let valid = MigratePfnFlags(rawValue: 1 << 0)     // MIGRATE_PFN_VALID
    static let migrate = MigratePfnFlags(rawValue: 1 << 1)   // MIGRATE_PFN_MIGRATE
    static let write = MigratePfnFlags(rawValue: 1 << 3)     // MIGRATE_PFN_WRITE
    static let compound = MigratePfnFlags(rawValue: 1 << 4)  // MIGRATE_PFN_COMPOUND

    /// A collected source: VALID | MIGRATE, plus WRITE and COMPOUND as given.
    static func collected(_ writable: Bool, compound: Bool = false) -> MigratePfnFlags {
        var f: MigratePfnFlags = [.valid, .migrate]
        if writable { f.insert(.write) }
        if compound { f.insert(.compound) }
        return f
    }
}

/// One src/dst element: migrate_pfn(page) | flags.
struct MigratePfn {
    var page: PageRef?
    var flags: MigratePfnFlags = []
}

/// enum migrate_vma_direction.
struct MigrateSelect: OptionSet {
    let rawValue: UInt8
    static let system = MigrateSelect(rawValue: 1 << 0)         // MIGRATE_VMA_SELECT_SYSTEM
    static let devicePrivate = MigrateSelect(rawValue: 1 << 1)  // MIGRATE_VMA_SELECT_DEVICE_PRIVATE
    static let deviceCoherent = MigrateSelect(rawValue: 1 << 2) // MIGRATE_VMA_SELECT_DEVICE_COHERENT
    static let compound = MigrateSelect(rawValue: 1 << 3)       // MIGRATE_VMA_SELECT_COMPOUND
}

/// struct migrate_vma.
final class MigrateVMA {
    let mm: MMStruct
    let vma: VMArea
    let start: UInt64
    let end: UInt64
    var src: [MigratePfn]
    var dst: [MigratePfn]
    /// migrate->cpages: entries collected.
    var cpages = 0
    let pgmapOwner: AnyObject
    let flags: MigrateSelect
    let faultPage: PageRef?
    /// What each collected entry was before it became a migration entry, to restore on failure.
    /// (An array, not a dictionary: every page of a window may be collected.)
    var saved: [SavedEntry?]
    /// The other mappings of collected pages (another mm's, after fork) that
    /// migrate_device_unmap()'s try_to_migrate() replaced by migration entries, for
    /// remove_migration_ptes() to map the new page (or the old one back) into.
    var rmapped: [RmapMapping] = []

    var npages: Int { src.count }

    init(mm: MMStruct, vma: VMArea, start: UInt64, end: UInt64, pgmapOwner: AnyObject,
         flags: MigrateSelect, faultPage: PageRef? = nil) {
        self.mm = mm
        self.vma = vma
        self.start = start
        self.end = end
        let n = Int((end - start) >> UInt64(mm.pageShift))
        saved = Array(repeating: nil, count: n)
        src = Array(repeating: MigratePfn(), count: n)
        dst = Array(repeating: MigratePfn(), count: n)
        self.pgmapOwner = pgmapOwner
        self.flags = flags
        self.faultPage = faultPage
    }

    func address(_ i: Int) -> UInt64 { start + UInt64(i) << UInt64(mm.pageShift) }
}

/// A mapping of source entry `index`'s page in `mm` at `addr`, other than the one
/// migrate_vma_collect() replaced, and what it was.
struct RmapMapping {
    let mm: MMStruct
    let addr: UInt64
    let index: Int
    let saved: SavedEntry
}

/// What a collected entry was before it became a migration entry: its kind and write bit.
/// The page is the source entry's (src[i]), so a saved entry holds no reference of its own
/// and the array is freed without a release per page.
struct SavedEntry {
    enum Kind: UInt8 {
        /// A present PTE (a system or device-coherent page).
        case ptePresent
        /// A device-private PTE.
        case pteDevicePrivate
        /// A PMD-mapped THP.
        case pmdHuge
        /// A device-private PMD.
        case pmdDevicePrivate
    }
    let kind: Kind
    let writable: Bool

    var isPMD: Bool { kind == .pmdHuge || kind == .pmdDevicePrivate }

    /// The PTE it was, of `page` (a PTE-level kind).
    func pte(_ page: PageRef) -> PTE {
        kind == .pteDevicePrivate ? .devicePrivate(page, writable: writable) : .present(page, writable: writable)
    }
}

extension MMStruct {
    /// migrate_vma_setup(): collect and unmap the pages of [start, end) that
    /// match `args.flags`, replacing them with migration entries.
    func migrateVMASetup(_ args: MigrateVMA) -> Errno? {
        let pageMask = UInt64(pageSize - 1)
        guard args.start & pageMask == 0, args.end & pageMask == 0, args.start < args.end else { return .EINVAL }
        guard args.vma.start <= args.start, args.end <= args.vma.end else { return .EINVAL }
        // Neither hugetlb nor VM_SPECIAL (the device file's own VM_MIXEDMAP mapping included).
        if args.vma.isHugetlb || !args.vma.flags.isDisjoint(with: .special) { return .EINVAL }
        // migrate_vma_collect()'s walk_page_range().
        kernel.pageWalks += 1
        collectAndUnmap(args)
        return nil
    }

    /// migrate_vma_collect() and migrate_device_unmap(): under a MIGRATE invalidation
    /// owned by the pgmap owner (which fires even when nothing in the range moves),
    /// the selected pages become migration entries.
    func collectAndUnmap(_ args: MigrateVMA) {
        withInvalidation(.migrate, args.start, args.end, owner: args.pgmapOwner) {
            var from = args.start
            ptl.lock()
            while let split = migrateVMACollect(args, from: from) {
                // split_folio() of a THP the range covers only part of: unmap_folio() ->
                // try_to_migrate_one() splits the PMD under an MMU_NOTIFY_CLEAR of the whole
                // folio, which every mirror (this one's owner included) honours. The walk then
                // goes on over the PTEs.
                ptl.unlock()
                withInvalidation(.clear, split.pmdStart, split.pmdStart + UInt64(pmdSize)) {
                    ptl.withLock { splitHugePMDLocked(split.pmdStart) }
                }
                from = split.resume
                ptl.lock()
            }
            ptl.unlock()
            tryToMigrate(args)
            ptl.lock()
            let restored = migrateDeviceUnmapCheck(args)
            ptl.unlock()
            for i in restored { restoreRmapped(args, i) }
        }
    }

    /// migrate_device_unmap()'s try_to_migrate() of a collected page that is still mapped
    /// elsewhere (a COW-shared page after fork): rmap_walk() finds every other mapping, and
    /// try_to_migrate_one() replaces each by a migration entry under an MMU_NOTIFY_CLEAR
    /// of that mm, so the page migrates for every mm that maps it. The simulator has no
    /// reverse map: the page tables of every live mm are searched (as migrate_device_range()'s
    /// eviction does). Only order-0 entries: another mapping of a compound source stays as
    /// it was.
    private func tryToMigrate(_ args: MigrateVMA) {
        // The common case, an order-0 page mapped only where it was collected, needs no
        // search (nor the hashing below, a tenth of a migration's time).
        var mappedElsewhere = false
        for i in 0..<args.npages {
            guard args.src[i].flags.contains(.migrate), let page = args.src[i].page, let saved = args.saved[i],
                  !saved.isPMD else { continue }
            if page.folio.order > 0 || page.folio.mapcount.load(ordering: .relaxed) > 1 {
                mappedElsewhere = true
                break
            }
        }
        guard mappedElsewhere else { return }
        struct Key: Hashable { let folio: ObjectIdentifier; let index: Int }
        var held: [ObjectIdentifier: Int] = [:]
        var wanted: [Key: Int] = [:]
        for i in 0..<args.npages {
            guard args.src[i].flags.contains(.migrate), let page = args.src[i].page, let saved = args.saved[i] else { continue }
            held[ObjectIdentifier(page.folio), default: 0] += 1
            if !saved.isPMD { wanted[Key(folio: ObjectIdentifier(page.folio), index: page.index)] = i }
        }
        // folio_mapped() beyond the migration entries this collection holds.
        wanted = wanted.filter { key, i in
            args.src[i].page!.folio.mapcount.load(ordering: .relaxed) > held[key.folio, default: 0]
        }
        guard !wanted.isEmpty else { return }
        let pageSize = UInt64(self.pageSize)
        for other in kernel.liveMMs() {
            var found: [(addr: UInt64, index: Int)] = []
            other.ptl.withLock {
                for (pmdIndex, entry) in other.pageTable.pmds {
                    guard case .table(let table) = entry else { continue }
                    let base = pmdIndex << UInt64(kernel.pmdShift)
                    for (k, pte) in table.entries.enumerated() {
                        guard let (page, _) = Self.rmapSaved(pte),
                              let i = wanted[Key(folio: ObjectIdentifier(page.folio), index: page.index)] else { continue }
                        found.append((base + UInt64(k << kernel.pageShift), i))
                    }
                }
            }
            for f in found.sorted(by: { $0.addr < $1.addr }) {
                other.withInvalidation(.clear, f.addr, f.addr + pageSize) {
                    other.ptl.withLock {
                        guard let source = args.src[f.index].page, let (page, saved) = Self.rmapSaved(other.pageTable.pte(f.addr)),
                              page === source else { return }
                        other.pageTable.setPTE(f.addr, .migration(page, writable: saved.writable))
                        args.rmapped.append(RmapMapping(mm: other, addr: f.addr, index: f.index, saved: saved))
                    }
                }
            }
        }
    }

    /// A PTE try_to_migrate_one() replaces by a migration entry: its page and what it was.
    /// A device-exclusive entry's migration entry is read-only (as in the eviction).
    private static func rmapSaved(_ pte: PTE) -> (PageRef, SavedEntry)? {
        switch pte {
        case .present(let p, let w): (p, SavedEntry(kind: .ptePresent, writable: w))
        case .devicePrivate(let p, let w): (p, SavedEntry(kind: .pteDevicePrivate, writable: w))
        case .deviceExclusive(let p, _): (p, SavedEntry(kind: .ptePresent, writable: false))
        case .none, .migration: nil
        }
    }

    /// remove_migration_ptes(folio, folio): the other mappings of source entry `i` that
    /// try_to_migrate() replaced get the old page back.
    func restoreRmapped(_ args: MigrateVMA, _ i: Int) {
        guard let page = args.src[i].page else { return }
        for e in args.rmapped where e.index == i {
            e.mm.ptl.withLock {
                guard case .migration(let p, _) = e.mm.pageTable.pte(e.addr), p === page else { return }
                e.mm.restore(e.addr, e.saved, page)
            }
        }
        args.rmapped.removeAll { $0.index == i }
    }

    /// migrate_device_unmap()'s migrate_vma_check_page(): a collected page that someone
    /// else holds a reference to (a GUP pin) is not migrated; its entry is restored.
    /// Returns the entries restored. Caller holds `ptl`.
    private func migrateDeviceUnmapCheck(_ args: MigrateVMA) -> [Int] {
        var restored: [Int] = []
        for i in 0..<args.npages {
            guard args.src[i].flags.contains(.migrate), let page = args.src[i].page,
                  page.folio.extraRefs.load(ordering: .relaxed) > 0 else { continue }
            args.src[i].flags.remove(.migrate)
            restored.append(i)
            if let saved = args.saved[i] {
                args.saved[i] = nil
                restore(args.address(i), saved, page)
            }
        }
        return restored
    }

    /// migrate_vma_collect(): walk_page_range with migrate_vma_collect_pmd, from `from`.
    /// Caller holds `ptl`. Stops where a huge PMD has to be split with the lock dropped:
    /// the PMD to split and where to go on.
    private func migrateVMACollect(_ args: MigrateVMA, from: UInt64) -> (pmdStart: UInt64, resume: UInt64)? {
        let pmdSize = UInt64(self.pmdSize)
        let pageSize = UInt64(self.pageSize)
        let compoundOK = args.flags.contains(.compound)
        var addr = from
        func idx(_ a: UInt64) -> Int { Int((a - args.start) / pageSize) }
        func collectHole(_ s: UInt64, _ e: UInt64) {
            guard args.vma.isAnonymous else { return }
            if compoundOK && s & (pmdSize - 1) == 0 && e & (pmdSize - 1) == 0 && e - s == pmdSize {
                args.src[idx(s)] = MigratePfn(page: nil, flags: [.migrate, .compound])
                args.cpages += 1
                return
            }
            var a = s
            while a < e {
                args.src[idx(a)] = MigratePfn(page: nil, flags: [.migrate])
                args.cpages += 1
                a += pageSize
            }
        }
        // migrate_vma_collect_huge_pmd(): the whole PMD is one compound source
        // entry, replaced by a migration entry until finalize.
        func collectWholePMD(_ a: UInt64, _ folio: Folio, writable: Bool, saved: SavedEntry.Kind) {
            args.src[idx(a)] = MigratePfn(page: PageRef(folio, 0),
                                          flags: MigratePfnFlags.collected(writable, compound: true))
            args.cpages += 1
            args.saved[idx(a)] = SavedEntry(kind: saved, writable: writable)
            pageTable.setPMD(a, .migration(folio, writable: writable))
        }
        while addr < args.end {
            let pmdStart = addr & ~(pmdSize - 1)
            let segEnd = min(pmdStart + pmdSize, args.end)
            let wholePMD = compoundOK && addr == pmdStart && segEnd == pmdStart + pmdSize
            switch pageTable.pmd(addr) {
            case nil:
                collectHole(addr, segEnd)
                addr = segEnd
                continue
            case .huge(let folio, let writable)?:
                guard args.flags.contains(.system) else { addr = segEnd; continue }
                if folio.kind == .hugeZero {
                    // migrate_vma_collect_huge_pmd(): the huge zero page is a hole, whole or in
                    // part, and stays mapped; migrate_vma_insert_page() splits it if it must.
                    collectHole(addr, segEnd)
                    addr = segEnd
                    continue
                } else if wholePMD {
                    collectWholePMD(addr, folio, writable: writable, saved: .pmdHuge)
                    addr = segEnd
                    continue
                } else if !kernel.migratesDeviceTHP {
                    // Before 6.18: split_folio() of the THP, which fails while the folio is
                    // pinned (migrate_vma_collect_skip() of the PMD); after it, the PTE walk.
                    guard folio.extraRefs.load(ordering: .relaxed) == 0 else { addr = segEnd; continue }
                    folio.splitToPages = true
                    return (pmdStart, addr)
                } else {
                    return (pmdStart, addr)
                }
            case .devicePrivate(let folio, let writable)?:
                guard args.flags.contains(.devicePrivate), folio.pgmap?.owner === args.pgmapOwner else {
                    addr = segEnd
                    continue
                }
                if wholePMD {
                    collectWholePMD(addr, folio, writable: writable, saved: .pmdDevicePrivate)
                    addr = segEnd
                    continue
                }
                return (pmdStart, addr)
            case .hugetlb?, .migration?:
                addr = segEnd
                continue
            case .table?:
                break
            }
            guard case .table(let table)? = pageTable.pmd(addr) else { addr = segEnd; continue }
            var a = addr
            while a < segEnd {
                let i = idx(a)
                let ti = pageTable.pteIndex(a)
                let pte = table.entries[ti]
                switch pte {
                case .none:
                    if args.vma.isAnonymous {
                        args.src[i] = MigratePfn(page: nil, flags: [.migrate])
                        args.cpages += 1
                    }
                case .devicePrivate(let page, let writable):
                    if args.flags.contains(.devicePrivate), page.folio.pgmap?.owner === args.pgmapOwner {
                        args.src[i] = MigratePfn(page: page, flags: MigratePfnFlags.collected(writable))
                        args.cpages += 1
                        args.saved[i] = SavedEntry(kind: .pteDevicePrivate, writable: writable)
                        table.entries[ti] = .migration(page, writable: writable)
                    }
                case .present(let page, let writable):
                    let folio = page.folio
                    if folio.kind == .zero {
                        if args.flags.contains(.system) {
                            args.src[i] = MigratePfn(page: nil, flags: [.migrate])
                            args.cpages += 1
                        }
                    } else if folio.kind == .deviceCoherent {
                        if args.flags.contains(.deviceCoherent), folio.pgmap?.owner === args.pgmapOwner {
                            args.src[i] = MigratePfn(page: page, flags: MigratePfnFlags.collected(writable))
                            args.cpages += 1
                            args.saved[i] = SavedEntry(kind: .ptePresent, writable: writable)
                            table.entries[ti] = .migration(page, writable: writable)
                        }
                    } else if folio.isTransCompound && !kernel.migratesDeviceTHP {
                        // Before 6.18, "FIXME support THP": a PTE-mapped THP is not collected.
                    } else if folio.kind == .anon && args.flags.contains(.system) {
                        // Only anonymous memory can move to device memory; page cache,
                        // kernel (vm_insert_page) and hugetlb pages are left in place.
                        args.src[i] = MigratePfn(page: page, flags: MigratePfnFlags.collected(writable))
                        args.cpages += 1
                        args.saved[i] = SavedEntry(kind: .ptePresent, writable: writable)
                        table.entries[ti] = .migration(page, writable: writable)
                    }
                case .deviceExclusive, .migration:
                    break
                }
                a += pageSize
            }
            addr = segEnd
        }
        return nil
    }
}
