import ABI

// mm/migrate_device.c, the second half: migrate_vma_pages(), migrate_vma_finalize()
// and migrate_device_range() (eviction of a device's pages).

extension MMStruct {
    /// migrate_vma_pages(): pages without a destination are not migrated; a
    /// compound source with an order-0 destination is split
    /// (migrate_vma_split_unmapped_folio()).
    func migrateVMAPages(_ args: MigrateVMA) {
        var i = 0
        let nrPMD = 1 << pmdOrder
        while i < args.npages {
            let s = args.src[i]
            guard s.flags.contains(.migrate) else { i += 1; continue }
            guard args.dst[i].page != nil else {
                args.src[i].flags.remove(.migrate)
                i += 1
                continue
            }
            if s.flags.contains(.compound) && !args.dst[i].flags.contains(.compound) {
                // Split the source into order-0 entries.
                args.src[i].flags.remove(.compound)
                if let page = s.page {
                    // migrate_vma_split_unmapped_folio(): split_huge_pmd_address() of the frozen
                    // PMD, with __split_huge_pmd()'s MMU_NOTIFY_CLEAR.
                    let haddr = args.address(i)
                    withInvalidation(.clear, haddr, haddr + UInt64(pmdSize)) {
                        ptl.withLock { splitHugePMDLocked(haddr) }
                    }
                    if let saved = args.saved[i], saved.isPMD {
                        args.saved[i] = nil
                        let w = s.flags.contains(.write)
                        let original = SavedEntry(kind: saved.kind == .pmdDevicePrivate ? .pteDevicePrivate : .ptePresent,
                                                  writable: w)
                        for j in 0..<nrPMD where i + j < args.npages {
                            args.saved[i + j] = original
                            args.src[i + j] = MigratePfn(page: PageRef(page.folio, j), flags: MigratePfnFlags.collected(w))
                        }
                    }
                } else {
                    for j in 1..<nrPMD where i + j < args.npages {
                        args.src[i + j].flags.insert(.migrate)
                    }
                }
                i += nrPMD
                continue
            }
            if !s.flags.contains(.compound) && args.dst[i].flags.contains(.compound) {
                args.src[i].flags.remove(.migrate)
            }
            i += 1
        }
        // The holes get their pages now, under one MIGRATE invalidation from the first of
        // them to the end (owned by the pgmap owner, as the collection's was).
        let holes = (0..<args.npages).filter { args.src[$0].page == nil && args.src[$0].flags.contains(.migrate) }
        guard let first = holes.first else { return }
        withInvalidation(.migrate, args.address(first), args.end, owner: args.pgmapOwner) {
            var k = 0
            while k < holes.count {
                // migrate_vma_insert_page(): an order-0 page cannot go under the huge zero
                // page's PMD; split_huge_pmd() splits it first, with its MMU_NOTIFY_CLEAR
                // (not the migration's own event, so every mirror of the PMD forgets it).
                let split: UInt64? = ptl.withLock {
                    while k < holes.count {
                        let i = holes[k]
                        if args.src[i].flags.contains(.migrate), let zeroPMD = hugeZeroUnder(args, i) { return zeroPMD }
                        if args.src[i].flags.contains(.migrate) { insertHole(args, i) }
                        k += 1
                    }
                    return nil
                }
                if let split { splitHugePMDAddressForce(split) }
            }
        }
    }

    /// The huge zero PMD an order-0 page for hole `i` would have to be inserted under.
    /// Caller holds `ptl`.
    private func hugeZeroUnder(_ args: MigrateVMA, _ i: Int) -> UInt64? {
        let addr = args.address(i)
        guard args.vma.isAnonymous, args.dst[i].page != nil, !args.dst[i].flags.contains(.compound),
              case .huge(let f, _)? = pageTable.pmd(addr), f.kind == .hugeZero else { return nil }
        return addr & ~UInt64(pmdSize - 1)
    }

    /// migrate_vma_finalize(): replace each migration entry (or hole) by the
    /// new page if the entry migrated, otherwise restore the old one; unused
    /// destination pages are freed.
    func migrateVMAFinalize(_ args: MigrateVMA) {
        var unused: [Folio] = []
        ptl.withLock {
            // The PTE table of the PMD the last entry was in: a window's entries go in address
            // order, so one lookup per PMD instead of two per page. Forgotten after anything that
            // sets a PMD.
            var cursor = PTECursor()
            var i = 0
            while i < args.npages {
                let s = args.src[i]
                let d = args.dst[i]
                let addr = args.address(i)
                let migrated = s.flags.contains(.migrate) && d.page != nil
                // A hole was filled (or not) by migrate_vma_pages().
                guard let source = s.page else {
                    if !migrated, let dp = d.page, dp.index == 0 { unused.append(dp.folio) }
                    i += migrated && d.flags.contains(.compound) ? 1 << pmdOrder : 1
                    continue
                }
                // remove_migration_ptes(): only where the migration entry is still there; one
                // that was zapped meanwhile (munmap, MADV_DONTNEED) stays gone, and the new
                // page, mapped nowhere, is freed.
                let saved = args.saved[i]
                let pmdLevel = d.flags.contains(.compound) || saved?.isPMD == true
                let table = pmdLevel ? nil : cursor.table(pageTable, addr)
                let ti = pageTable.pteIndex(addr)
                let present = pmdLevel ? isPMDMigrationEntry(addr, of: source.folio)
                    : table.map { isMigrationEntry($0.entries[ti], of: source) } ?? false
                if !migrated {
                    if present, let saved {
                        if let table {
                            PageTable.set(table, ti, saved.pte(source))
                        } else {
                            restore(addr, saved, source)
                            cursor = PTECursor()
                        }
                    }
                    if let dp = d.page, dp.index == 0 { unused.append(dp.folio) }
                    i += 1
                    continue
                }
                let newPage = d.page!
                guard present else {
                    if newPage.index == 0 { unused.append(newPage.folio) }
                    i += d.flags.contains(.compound) ? 1 << pmdOrder : 1
                    continue
                }
                let writable = s.flags.contains(.write)
                if d.flags.contains(.compound) {
                    let folio = newPage.folio
                    pageTable.setPMD(addr, folio.isDevicePrivate ? .devicePrivate(folio, writable: writable)
                                     : .huge(folio, writable: writable))
                    cursor = PTECursor()
                    i += 1 << pmdOrder
                    continue
                }
                PageTable.set(table!, ti, newPage.folio.isDevicePrivate ? .devicePrivate(newPage, writable: writable)
                              : .present(newPage, writable: writable))
                i += 1
            }
        }
        // remove_migration_ptes() in the other mms try_to_migrate() unmapped the sources from:
        // the new page where the source migrated, the old one back where it did not.
        for e in args.rmapped {
            let s = args.src[e.index], d = args.dst[e.index]
            guard let source = s.page else { continue }
            e.mm.ptl.withLock {
                guard case .migration(let p, _) = e.mm.pageTable.pte(e.addr), p === source else { return }
                if s.flags.contains(.migrate), let newPage = d.page, !d.flags.contains(.compound) {
                    let w = e.saved.writable
                    e.mm.pageTable.setPTE(e.addr, newPage.folio.isDevicePrivate ? .devicePrivate(newPage, writable: w)
                                          : .present(newPage, writable: w))
                } else {
                    e.mm.restore(e.addr, e.saved, source)
                }
            }
        }
        args.rmapped = []
        for folio in unused where folio.mapcount.load(ordering: .relaxed) == 0 {
            folio.pgmap?.ops.folioFree(folio)
        }
        // remove_migration_ptes(): whoever waits on these entries may go on.
        kernel.migrationWaiters.wakeAll()
    }

    /// `pte` is still the migration entry for `page`.
    private func isMigrationEntry(_ pte: PTE, of page: PageRef) -> Bool {
        guard case .migration(let p, _) = pte else { return false }
        return p === page
    }

    /// The PMD at `addr` is still the migration entry for `folio`. Caller holds `ptl`.
    private func isPMDMigrationEntry(_ addr: UInt64, of folio: Folio) -> Bool {
        if case .migration(let f, _)? = pageTable.pmd(addr) { return f === folio }
        return false
    }

    /// migrate_vma_insert_page() / migrate_vma_insert_huge_pmd_page(): a hole gets its
    /// new page in migrate_vma_pages(), only where the entry is still none or the zero
    /// page; otherwise the page is not migrated. Caller holds `ptl`.
    private func insertHole(_ args: MigrateVMA, _ i: Int) {
        let addr = args.address(i)
        let d = args.dst[i]
        guard let newPage = d.page, args.vma.isAnonymous else {
            args.src[i].flags.remove(.migrate)
            return
        }
        let writable = args.vma.flags.contains(.write)
        if d.flags.contains(.compound) {
            let folio = newPage.folio
            let entry: PMDEntry = folio.isDevicePrivate ? .devicePrivate(folio, writable: writable)
                : .huge(folio, writable: writable)
            switch pageTable.pmd(addr) {
            case nil: break
            case .huge(let f, _)? where f.kind == .hugeZero: ptl_clearRangeForInsert(addr)
            case .table(let t)? where t.entries.allSatisfy({ $0.isNone }): ptl_clearRangeForInsert(addr)
            default:
                args.src[i].flags.remove(.migrate)
                return
            }
            pageTable.setPMD(addr, entry)
            return
        }
        let insertable: Bool
        switch pageTable.pte(addr) {
        case .none: insertable = pageTable.pteTable(addr) != nil || pageTable.pmd(addr) == nil
        case .present(let p, _): insertable = p.folio.kind == .zero
        default: insertable = false
        }
        guard insertable else {
            args.src[i].flags.remove(.migrate)
            return
        }
        pageTable.setPTE(addr, newPage.folio.isDevicePrivate ? .devicePrivate(newPage, writable: writable)
                         : .present(newPage, writable: writable))
    }

    private func ptl_clearRangeForInsert(_ haddr: UInt64) {
        if pageTable.pmd(haddr) != nil { pageTable.setPMD(haddr, nil) }
    }

    /// The entry `saved` describes, of `page`, back at `addr`. Caller holds `ptl`.
    func restore(_ addr: UInt64, _ saved: SavedEntry, _ page: PageRef) {
        let w = saved.writable
        switch saved.kind {
        case .ptePresent, .pteDevicePrivate: pageTable.setPTE(addr, saved.pte(page))
        case .pmdHuge: pageTable.setPMD(addr, .huge(page.folio, writable: w))
        case .pmdDevicePrivate: pageTable.setPMD(addr, .devicePrivate(page.folio, writable: w))
        }
    }
}

extension SimKernel {
    /// migrate_device_range(): every page of `pgmap`, wherever it is mapped, is
    /// migrated to a new system page. There is no reverse map: every live mm is
    /// searched (the kernel finds the mappings through rmap; the outcome is the same).
    func migrateDeviceRange(_ pgmap: DevPagemap) {
        for mm in liveMMs() { mm.evictDevicePages(of: pgmap) }
    }
}

extension MMStruct {
    /// The part of migrate_device_range()/migrate_device_pages()/finalize that
    /// concerns this mm: each entry mapping a page of `chunk` is replaced by a
    /// copy in a new system page (a THP for a PMD-mapped device folio).
    func evictDevicePages(of chunk: DevPagemap) {
        struct Victim { let addr: UInt64; let pmdLevel: Bool; let page: PageRef; let writable: Bool }
        var victims: [Victim] = []
        ptl.withLock {
            for (index, entry) in pageTable.pmds {
                let base = index << UInt64(kernel.pmdShift)
                switch entry {
                case .devicePrivate(let f, let w) where f.pgmap === chunk:
                    victims.append(Victim(addr: base, pmdLevel: true, page: PageRef(f, 0), writable: w))
                case .huge(let f, let w) where f.pgmap === chunk:
                    victims.append(Victim(addr: base, pmdLevel: true, page: PageRef(f, 0), writable: w))
                case .table(let t):
                    for (i, pte) in t.entries.enumerated() {
                        switch pte {
                        case .devicePrivate(let p, let w) where p.folio.pgmap === chunk,
                             .present(let p, let w) where p.folio.pgmap === chunk:
                            victims.append(Victim(addr: base + UInt64(i << kernel.pageShift), pmdLevel: false,
                                                  page: p, writable: w))
                        case .deviceExclusive(let p, _) where p.folio.pgmap === chunk:
                            // try_to_migrate_one() handles the PFN swap entry of a device-exclusive
                            // coherent page too; softleaf_is_device_private_write() is false for it,
                            // so the migration entry, and the new page's PTE, are read-only.
                            victims.append(Victim(addr: base + UInt64(i << kernel.pageShift), pmdLevel: false,
                                                  page: p, writable: false))
                        default: break
                        }
                    }
                default: break
                }
            }
        }
        guard !victims.isEmpty else { return }
        victims.sort { $0.addr < $1.addr }
        for v in victims {
            let span = UInt64(v.pmdLevel ? pmdSize : pageSize)
            withInvalidation(.clear, v.addr, v.addr + span) {
                let order = v.pmdLevel ? pmdOrder : 0
                let folio = kernel.allocFolio(.anon, order: order, zeroed: false)
                folio.address(page: 0, pageSize: pageSize)
                    .copyMemory(from: v.page.address(pageSize: pageSize), byteCount: pageSize << order)
                ptl.withLock {
                    if v.pmdLevel {
                        guard let cur = pageTable.pmd(v.addr), cur.folio === v.page.folio else { return }
                        pageTable.setPMD(v.addr, .huge(folio, writable: v.writable))
                    } else {
                        guard let cur = pageTable.pte(v.addr).page, cur === v.page else { return }
                        pageTable.setPTE(v.addr, .present(PageRef(folio, 0), writable: v.writable))
                    }
                }
            }
        }
    }
}
