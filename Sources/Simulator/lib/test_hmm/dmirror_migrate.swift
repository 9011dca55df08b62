import ABI
import MachineInterface

// lib/test_hmm.c: migration both ways. HMM_DMIRROR_MIGRATE_TO_DEV
// (migrate_vma_* with device pages allocated and filled by the driver),
// HMM_DMIRROR_MIGRATE_TO_SYS, and the CPU's way back, the pagemap's
// migrate_to_ram() (dmirror_devmem_fault).

extension Dmirror {
    /// dmirror_migrate_to_device(): 512-page windows under mmap_read_lock, then the
    /// whole range is read back from `pt` (ENOENT where a page did not move).
    func migrateToDevice(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let (start, end, size) = commandRange(cmd) else { return .EINVAL }
        let migrated = withMM(orElse: .EINVAL) { () -> Errno? in
            mm.mmapLock.readLock()
            defer { mm.mmapLock.readUnlock() }
            // The plain-notifier driver holds its device lock across the migration to keep the
            // page tables from being downgraded under it; the setup's invalidation takes it too.
            plain?.deviceLock.lock()
            defer { plain?.deviceLock.unlock() }
            return forEachWindow(start, end) { vma, addr, next in
                let args = MigrateVMA(mm: mm, vma: vma, start: addr, end: next, pgmapOwner: mdevice,
                                      flags: mdevice.compoundSelect.union(.system))
                if let e = mm.migrateVMASetup(args) { return e }
                migrateAllocAndCopy(args)
                mm.migrateVMAPages(args)
                finalizeAndMap(args)
                mm.migrateVMAFinalize(args)
                return nil
            }
        }
        if let migrated { return migrated }
        // Return the migrated data for verification.
        return readBack(&cmd, start, end, size)
    }

    /// The migration loop's windows: at most PTRS_PER_PTE pages, never past the VMA
    /// (no VMA, or no VM_READ: -EINVAL). Caller holds mmap_lock.
    func forEachWindow(_ start: UInt64, _ end: UInt64,
                               _ body: (VMArea, UInt64, UInt64) -> Errno?) -> Errno? {
        var addr = start
        while addr < end {
            guard let vma = mm.vmaLookup(addr), vma.flags.contains(.read) else { return .EINVAL }
            let next = min(end, addr + UInt64(mm.pageTable.ptrsPerPTE * pageSize), vma.end)
            if let e = body(vma, addr, next) { return e }
            addr = next
        }
        return nil
    }

    /// The whole range from `pt` into the caller's buffer (MIGRATE_TO_DEV, EXCLUSIVE).
    func readBack(_ cmd: inout DmirrorCmd, _ start: UInt64, _ end: UInt64, _ size: UInt64) -> Errno? {
        // dmirror_bounce_init() comes first: a size vmalloc() refuses is -ENOMEM however the
        // read would go.
        if mm.kernel.vmallocRefuses(size) { return .ENOMEM }
        // dmirror_do_read() into a bounce buffer, then copy_to_user(): all or nothing. When
        // every page is in `pt` the read cannot fail, so it goes straight to the caller's
        // buffer: the same bytes and cpages, without a second buffer the size of the range.
        if let user = userPointer(cmd.ptr) {
            let direct = mutex.withLock { () -> DmirrorBounce? in
                guard mapsAll(start, end) else { return nil }
                let bounce = DmirrorBounce(addr: start, borrowing: user, size: Int(size))
                _ = doRead(start, end, bounce)
                return bounce
            }
            if let direct {
                cmd.cpages = direct.cpages
                return nil
            }
        }
        let bounce: DmirrorBounce
        switch bounceInit(start, size) {
        case .success(let b): bounce = b
        case .failure(let e): return e
        }
        defer { cmd.cpages = bounce.cpages }
        if let e = mutex.withLock({ doRead(start, end, bounce) }) { return e }
        return copyToUser(cmd.ptr, bounce)
    }

    /// Every page of [start, end) is in `pt`. Caller holds `mutex`.
    private func mapsAll(_ start: UInt64, _ end: UInt64) -> Bool {
        let first = start >> pageShift, stop = end >> pageShift
        return first >= stop || pt.holdsAll(first, through: stop - 1)
    }

    /// dmirror_migrate_alloc_and_copy().
    func migrateAllocAndCopy(_ args: MigrateVMA) {
        var i = 0
        while i < args.npages {
            let s = args.src[i]
            let isLarge = s.flags.contains(.compound)
            let write: MigratePfnFlags = s.flags.contains(.write) ? .write : []
            guard s.flags.contains(.migrate) else { i += 1; continue }
            let spage = s.page
            if let spage, spage.folio.isZoneDevice { i += 1; continue }  // "page already in device"
            let dpage: Folio? = consumeFailAlloc() ? nil : mdevice.allocPage(for: self, isLarge: isLarge)
            guard let dpage else {
                if !isLarge { i += 1; continue }
                let nr = spage.map { $0.folio.nrPages } ?? (1 << mdevice.pmdOrder)
                for j in 0..<nr where i < args.npages {
                    guard let small = mdevice.allocPage(for: self, isLarge: false) else { i += 1; continue }
                    mdevice.backingFolio(small).driverData = self
                    args.dst[i] = MigratePfn(page: PageRef(small, 0), flags: write.union(.valid))
                    if let spage {
                        mm.copyPage(to: PageRef(small, 0), from: PageRef(spage.folio, spage.index + j))
                    } else {
                        mm.clearPage(PageRef(small, 0))
                    }
                    i += 1
                }
                continue
            }
            mdevice.backingFolio(dpage).driverData = self
            var dflags = write.union(.valid)
            if isLarge { dflags.insert(.compound) }
            args.dst[i] = MigratePfn(page: PageRef(dpage, 0), flags: dflags)
            let bytes = pageSize << dpage.order
            let dst = dpage.address(page: 0, pageSize: pageSize)
            if let spage {
                dst.copyMemory(from: spage.address(pageSize: pageSize), byteCount: bytes)
            } else {
                dst.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            }
            i += dpage.nrPages
        }
    }

    /// dmirror_migrate_finalize_and_map(): store the backing pages in pt.
    func finalizeAndMap(_ args: MigrateVMA) {
        mutex.withLock { mapMigrated(args) }
    }

    /// The body of dmirror_migrate_finalize_and_map(). Caller holds `mutex`.
    func mapMigrated(_ args: MigrateVMA) {
        do {
            let startPfn = args.start >> pageShift
            for i in 0..<args.npages {
                guard args.src[i].flags.contains(.migrate), let dpage = args.dst[i].page else { continue }
                let nr = args.dst[i].flags.contains(.compound) ? dpage.folio.nrPages : 1
                let rfolio = mdevice.backingFolio(dpage.folio)
                let tag: DmirrorPTEntry.Tag = args.dst[i].flags.contains(.write) ? .write : .read
                for k in 0..<nr {
                    pt[startPfn + UInt64(i + k)] = DmirrorPTEntry(page: PageRef(rfolio, dpage.index + k), tag: tag)
                }
            }
        }
    }

    /// dmirror_migrate_to_system().
    func migrateToSystem(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let (start, end, _) = commandRange(cmd) else { return .EINVAL }
        var cpages: UInt64 = 0
        defer { cmd.cpages = cpages }
        return withMM(orElse: .EINVAL) {
            mm.mmapLock.readLock()
            defer { mm.mmapLock.readUnlock() }
            return forEachWindow(start, end) { vma, addr, next in
                let args = MigrateVMA(mm: mm, vma: vma, start: addr, end: next, pgmapOwner: mdevice,
                                      flags: mdevice.select.union(mdevice.compoundSelect))
                if let e = mm.migrateVMASetup(args) { return e }
                if !mdevice.devmemFaultAllocAndCopy(args, self) {
                    mm.migrateVMAFinalize(args)
                    return .ENOMEM
                }
                mm.migrateVMAPages(args)
                // dmirror_successful_migrated_pages()
                cpages += UInt64(args.src.lazy.filter { $0.flags.contains([.valid, .migrate]) }.count)
                mm.migrateVMAFinalize(args)
                return nil
            }
        }
    }
}

extension DmirrorDevice {
    /// MIGRATE_VMA_SELECT_COMPOUND where the release has device THPs; none before 6.18.
    var compoundSelect: MigrateSelect { kernel.migratesDeviceTHP ? .compound : [] }

    /// dmirror_devmem_fault(): dev_pagemap_ops.migrate_to_ram. The CPU touched
    /// a device-private page; migrate it (order 0 when PTE-mapped) back to RAM.
    func migrateToRam(mm: MMStruct, vma: VMArea, address: UInt64, page: PageRef, ptMapped: Bool) -> VMFault {
        let dmirror = backingFolio(page.folio).driverData as? Dmirror
        let order = ptMapped ? 0 : page.folio.order
        let span = UInt64(pageSize << order)
        let start = address & ~(span - 1)
        var flags = select
        if order > 0 { flags.insert(.compound) }
        let args = MigrateVMA(mm: mm, vma: vma, start: start, end: start + span, pgmapOwner: self,
                              flags: flags, faultPage: page)
        if mm.migrateVMASetup(args) != nil { return .sigbus }
        if !devmemFaultAllocAndCopy(args, dmirror) {
            mm.migrateVMAFinalize(args)
            return .oom
        }
        mm.migrateVMAPages(args)
        mm.migrateVMAFinalize(args)
        return .done
    }

    /// dmirror_devmem_fault_alloc_and_copy(): system pages for each selected
    /// device page; FAIL_ALLOC (or a failed large allocation) falls back to
    /// order 0, and on an order-0 page it is VM_FAULT_OOM (returns false).
    /// The mirror's `pt` entries are erased as pages are copied.
    func devmemFaultAllocAndCopy(_ args: MigrateVMA, _ dmirror: Dmirror?) -> Bool {
        let mm = args.mm
        var i = 0
        while i < args.npages {
            let s = args.src[i]
            guard let spage = s.page, s.flags.contains(.migrate), spage.folio.isZoneDevice else {
                i += 1
                continue
            }
            let order = s.flags.contains(.compound) ? spage.folio.order : 0
            var dflags: MigratePfnFlags = order > 0 ? [.compound] : []
            if s.flags.contains(.write) { dflags.insert(.write) }
            var dfolio: Folio?
            if dmirror?.consumeFailAlloc() == true {
                dflags.remove(.compound)
                dfolio = nil
            } else {
                dfolio = kernel.allocFolio(.anon, order: order, zeroed: false)
            }
            if dfolio == nil && order == 0 { return false }
            if let dfolio {
                args.dst[i] = MigratePfn(page: PageRef(dfolio, 0), flags: dflags.union(.valid))
                let bytes = pageSize << order
                dfolio.address(page: 0, pageSize: pageSize)
                    .copyMemory(from: spage.address(pageSize: pageSize), byteCount: bytes)
                dmirror?.erase(args.address(i), pages: 1 << order)
            } else {
                // Try with smaller pages if the large allocation failed.
                for j in 0..<(1 << order) where i + j < args.npages {
                    let small = kernel.allocFolio(.anon, order: 0, zeroed: false)
                    args.dst[i + j] = MigratePfn(page: PageRef(small, 0), flags: [.valid])
                    mm.copyPage(to: PageRef(small, 0), from: PageRef(spage.folio, spage.index + j))
                    dmirror?.erase(args.address(i + j), pages: 1)
                }
            }
            i += 1 << order
        }
        return true
    }
}
