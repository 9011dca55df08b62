import ABI

/// enum of dmirror_device.zone_device_type (HMM_DMIRROR_MEMORY_DEVICE_*).
enum ZoneDeviceType: Sendable {
    case devicePrivate
    case deviceCoherent
}

/// struct dmirror_chunk: one 256 MiB dev_pagemap (DEVMEM_CHUNK_SIZE).
final class DmirrorChunk: @unchecked Sendable {
    unowned let mdevice: DmirrorDevice
    let pfnFirst: UInt64
    let pfnLast: UInt64
    /// devmem->remove: set while the chunk is being torn down (RELEASE).
    var remove = false

    init(mdevice: DmirrorDevice, pfnFirst: UInt64, pfnLast: UInt64) {
        self.mdevice = mdevice
        self.pfnFirst = pfnFirst
        self.pfnLast = pfnLast
    }
}

/// A free list of device pages (or PMD-order folios) of one order.
///
/// The driver threads every page of a new 256 MiB chunk onto its list at
/// creation; here a new chunk is one run of untouched PFNs, handed out in
/// order, so creating a chunk costs O(1) instead of 65,536 list entries.
/// Which free PFN a caller gets is not observable through the ABI.
struct DevmemFreeList {
    private struct Run {
        var next: UInt64
        let end: UInt64
        let stride: UInt64
        let chunk: DmirrorChunk
    }
    /// Pages given back by dmirror_devmem_free(), reused first (a stack, like the list head).
    private var freed: [(pfn: UInt64, chunk: DmirrorChunk)] = []
    private var runs: [Run] = []

    mutating func addRun(_ pfns: Range<UInt64>, stride: UInt64, chunk: DmirrorChunk) {
        guard !pfns.isEmpty else { return }
        runs.append(Run(next: pfns.lowerBound, end: pfns.upperBound, stride: stride, chunk: chunk))
    }

    mutating func push(_ pfn: UInt64, chunk: DmirrorChunk) {
        freed.append((pfn, chunk))
    }

    mutating func pop() -> (pfn: UInt64, chunk: DmirrorChunk)? {
        if let page = freed.popLast() { return page }
        while let last = runs.indices.last {
            let run = runs[last]
            guard run.next + run.stride <= run.end else {
                runs.removeLast()
                continue
            }
            runs[last].next += run.stride
            return (run.next, run.chunk)
        }
        return nil
    }

    /// Unlinks every page of `chunk` (the chunk is being removed).
    mutating func removeAll(of chunk: DmirrorChunk) {
        freed.removeAll { $0.chunk === chunk }
        runs.removeAll { $0.chunk === chunk }
    }

    mutating func removeAll() {
        freed.removeAll()
        runs.removeAll()
    }
}

/// struct dmirror_device (lib/test_hmm.c): one /dev/hmm_dmirrorN, its
/// ZONE_DEVICE chunks and the free lists of device pages.
///
/// `@unchecked Sendable`: `devmemLock` protects `chunks`; `lock` (the
/// driver's spinlock) protects the free lists and counters.
final class DmirrorDevice: @unchecked Sendable {
    unowned let kernel: SimKernel
    let minor: Int
    let zoneDeviceType: ZoneDeviceType
    let devmemLock = SimMutex()
    let lock = SimMutex()
    var chunks: [DmirrorChunk] = []
    /// free_pages: order-0 device PFNs.
    private var freePages = DevmemFreeList()
    /// free_folios: PMD-order device folios, by head PFN.
    private var freeFolios = DevmemFreeList()
    var calloc = 0
    var cfree = 0
    /// spm_addr_dev0/1 for a coherent device (note the driver's inverted minor mapping).
    let spmAddress: UInt64

    static let chunkSize = 256 << 20  // DEVMEM_CHUNK_SIZE

    init(kernel: SimKernel, minor: Int, type: ZoneDeviceType) {
        self.kernel = kernel
        self.minor = minor
        self.zoneDeviceType = type
        // (MINOR(devt) - 2) ? spm_addr_dev0 : spm_addr_dev1
        spmAddress = (minor - 2) != 0 ? SimKernel.spmAddressDev0 : SimKernel.spmAddressDev1
        // dmirror_device_init(): build the first (small-page) chunk.
        _ = allocateChunk(wantPage: false, isLarge: false)
    }

    var isPrivateZone: Bool { zoneDeviceType == .devicePrivate }
    var pageSize: Int { kernel.configuration.pageSize }
    var pmdOrder: Int { kernel.pmdShift - kernel.pageShift }

    /// dmirror_select_device().
    var select: MigrateSelect { isPrivateZone ? .devicePrivate : .deviceCoherent }

    /// dmirror_allocate_chunk(): a new chunk's pages go to the free lists
    /// (PMD-aligned runs to free_folios when the chunk is made for a large
    /// request); optionally one page or folio is taken from it.
    private func allocateChunk(wantPage: Bool, isLarge: Bool) -> (pfn: UInt64, chunk: DmirrorChunk)? {
        let npages = UInt64(DmirrorDevice.chunkSize / pageSize)
        let base: UInt64
        devmemLock.lock()
        switch zoneDeviceType {
        case .devicePrivate:
            base = kernel.requestFreeMemRegion(UInt64(DmirrorDevice.chunkSize))
        case .deviceCoherent:
            // The SPM range is fixed: memremap_pages() of a second chunk over it fails.
            guard chunks.isEmpty else {
                devmemLock.unlock()
                return nil
            }
            base = spmAddress
        }
        let first = base >> UInt64(kernel.pageShift)
        let chunk = DmirrorChunk(mdevice: self, pfnFirst: first, pfnLast: first + npages)
        chunks.append(chunk)
        devmemLock.unlock()

        let nrPMD = UInt64(1 << pmdOrder)
        lock.lock()
        defer { lock.unlock() }
        if isLarge {
            // PMD-aligned runs become folios; an unaligned head or tail stays order 0.
            let headEnd = min((chunk.pfnFirst + nrPMD - 1) / nrPMD * nrPMD, chunk.pfnLast)
            let tailStart = max(chunk.pfnLast / nrPMD * nrPMD, headEnd)
            freePages.addRun(chunk.pfnFirst..<headEnd, stride: 1, chunk: chunk)
            freeFolios.addRun(headEnd..<tailStart, stride: nrPMD, chunk: chunk)
            freePages.addRun(tailStart..<chunk.pfnLast, stride: 1, chunk: chunk)
        } else {
            freePages.addRun(chunk.pfnFirst..<chunk.pfnLast, stride: 1, chunk: chunk)
        }
        guard wantPage else { return nil }
        if isLarge {
            guard let f = freeFolios.pop() else { return nil }
            calloc += Int(nrPMD)
            return f
        }
        guard let p = freePages.pop() else { return nil }
        calloc += 1
        return p
    }

    /// dmirror_devmem_alloc_page(): a device page (order 0) or folio
    /// (HPAGE_PMD_ORDER); a private device also gets a backing system page.
    func allocPage(for dmirror: Dmirror?, isLarge: Bool) -> Folio? {
        let order = isLarge ? pmdOrder : 0
        let rpage: Folio? = isPrivateZone ? kernel.allocFolio(.kernel, order: order, zeroed: false) : nil
        lock.lock()
        var taken: (pfn: UInt64, chunk: DmirrorChunk)?
        if isLarge, let f = freeFolios.pop() {
            calloc += 1 << order
            taken = f
        } else if !isLarge, let p = freePages.pop() {
            calloc += 1
            taken = p
        }
        lock.unlock()
        if taken == nil { taken = allocateChunk(wantPage: true, isLarge: isLarge) }
        guard let (pfn, chunk) = taken else { return nil }
        // zone_device_folio_init()
        let folio = Folio(kind: isPrivateZone ? .devicePrivate : .deviceCoherent, order: order,
                          pageSize: pageSize, pfn: pfn, pgmap: chunk, zeroed: false)
        folio.zoneDeviceData = rpage
        return folio
    }

    /// BACKING_PAGE(): the page holding a device page's data.
    func backingFolio(_ folio: Folio) -> Folio { folio.zoneDeviceData ?? folio }

    /// dev_pagemap_ops.folio_free (dmirror_devmem_free): the last mapping is
    /// gone; the backing page is freed and the device page returns to the
    /// free lists unless its chunk is being removed.
    func devmemFree(_ folio: Folio) {
        folio.zoneDeviceData = nil
        guard let chunk = folio.pgmap else { return }
        lock.lock()
        defer { lock.unlock() }
        if !chunk.remove {
            cfree += folio.nrPages
            if folio.order > 0 {
                freeFolios.push(folio.pfn, chunk: chunk)
            } else {
                freePages.push(folio.pfn, chunk: chunk)
            }
        }
    }

    /// A destination page that was allocated but never mapped.
    func freeUnmapped(_ folio: Folio) { devmemFree(folio) }

    /// dmirror_devmem_fault(): dev_pagemap_ops.migrate_to_ram. The CPU touched
    /// a device-private page; migrate it (order 0 when PTE-mapped) back to RAM.
    func devmemFault(mm: MMStruct, vma: VMArea, address: UInt64, page: PageRef, ptMapped: Bool) -> VMFault {
        let dmirror = backingFolio(page.folio).mirror
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

    /// dmirror_device_evict_chunk(): migrate_device_range() over the chunk —
    /// every page of it, in every process, goes back to system memory.
    func evictChunk(_ chunk: DmirrorChunk) {
        for mm in kernel.liveMMs() {
            mm.evictDevicePages(of: chunk)
        }
    }

    /// dmirror_device_remove_chunks() (HMM_DMIRROR_RELEASE).
    func removeChunks() {
        devmemLock.lock()
        let all = chunks
        devmemLock.unlock()
        for chunk in all {
            lock.withLock {
                chunk.remove = true
                freePages.removeAll(of: chunk)
                freeFolios.removeAll(of: chunk)
            }
            evictChunk(chunk)
        }
        devmemLock.withLock { chunks.removeAll { c in all.contains { $0 === c } } }
        lock.withLock {
            freePages.removeAll()
            freeFolios.removeAll()
        }
    }
}

extension MMStruct {
    /// The part of migrate_device_range()/migrate_device_pages()/finalize that
    /// concerns this mm: each entry mapping a page of `chunk` is replaced by a
    /// copy in a new system page (a THP for a PMD-mapped device folio).
    func evictDevicePages(of chunk: DmirrorChunk) {
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
