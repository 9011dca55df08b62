import ABI

// lib/test_hmm.c: the device memory of a dmirror device. Chunks of 256 MiB
// of ZONE_DEVICE pages (fresh regions for a private device, the one fixed SPM
// range for a coherent one), their free lists, allocation and free, and
// eviction of a whole chunk back to system memory.

/// struct dmirror_chunk: one 256 MiB dev_pagemap (DEVMEM_CHUNK_SIZE).
final class DmirrorChunk: DevPagemap, @unchecked Sendable {
    unowned let mdevice: DmirrorDevice
    /// devmem->remove: set while the chunk is being torn down (RELEASE).
    var remove = false

    init(mdevice: DmirrorDevice, pfnFirst: UInt64, pfnLast: UInt64) {
        self.mdevice = mdevice
        super.init(type: mdevice.zoneDeviceType, pfnFirst: pfnFirst, pfnLast: pfnLast, owner: mdevice, ops: mdevice)
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
final class DmirrorDevice: DevPagemapOps, CustomStringConvertible, @unchecked Sendable {
    /// Unowned(unsafe): the kernel owns its devices and outlives them, and a checked unowned
    /// reference costs a retain and release per use (several per migrated page).
    unowned(unsafe) let kernel: SimKernel
    let minor: Int
    /// How reports name the device (and its pgmap owner).
    var description: String { "hmm_dmirror\(minor)" }
    let zoneDeviceType: MemoryType
    let devmemLock: KernelLock
    let lock: KernelLock
    var chunks: [DmirrorChunk] = []
    /// free_pages: order-0 device PFNs.
    private var freePages = DevmemFreeList()
    /// free_folios: PMD-order device folios, by head PFN.
    private var freeFolios = DevmemFreeList()
    var calloc = 0
    var cfree = 0
    /// Device pages handed out and not yet freed (what the introspection reports). Under `lock`.
    private(set) var pagesInUse = 0
    /// spm_addr_dev0/1 for a coherent device (note the driver's inverted minor mapping).
    let spmAddress: UInt64

    static let chunkSize = 256 << 20  // DEVMEM_CHUNK_SIZE

    init(kernel: SimKernel, minor: Int, type: MemoryType) {
        self.kernel = kernel
        self.minor = minor
        self.zoneDeviceType = type
        pageSize = kernel.configuration.pageSize
        pmdOrder = kernel.pmdShift - kernel.pageShift
        devmemLock = KernelLock(kernel.scheduler, .devmemLock)
        lock = KernelLock(kernel.scheduler, .mdeviceLock)
        // (MINOR(devt) - 2) ? spm_addr_dev0 : spm_addr_dev1
        spmAddress = (minor - 2) != 0 ? SimKernel.spmAddressDev0 : SimKernel.spmAddressDev1
        // dmirror_device_init(): build the first (small-page) chunk.
        _ = allocateChunk(wantPage: false, isLarge: false)
    }

    var isPrivateZone: Bool { zoneDeviceType == .devicePrivate }
    let pageSize: Int
    let pmdOrder: Int

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
        lock.withLock { pagesInUse += 1 << order }
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
    func folioFree(_ folio: Folio) {
        folio.zoneDeviceData = nil
        guard let chunk = folio.pgmap as? DmirrorChunk else { return }
        lock.lock()
        defer { lock.unlock() }
        pagesInUse -= folio.nrPages
        if !chunk.remove {
            cfree += folio.nrPages
            if folio.order > 0 {
                freeFolios.push(folio.pfn, chunk: chunk)
            } else {
                freePages.push(folio.pfn, chunk: chunk)
            }
        }
    }

    /// dmirror_device_evict_chunk(): migrate_device_range() over the chunk —
    /// every page of it, in every process, goes back to system memory.
    func evictChunk(_ chunk: DmirrorChunk) {
        kernel.migrateDeviceRange(chunk)
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
