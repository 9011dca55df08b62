import ABI
import MachineInterface

// What the model can say about itself (MachineIntrospection): the fuzzer's
// invariant checks. Read between operations, when nothing is in flight.

extension SimProcess: MachineIntrospection {
    func peek(_ address: UInt64, count: Int) -> [UInt8]? {
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        return mm.peek(address, count)
    }

    func invariantViolations() -> [String] { kernel.invariantViolations() }

    func invariantReports() -> [CheckerReport] { kernel.invariantReports() }

    func scheduleDecisions() -> [ScheduleDecision] { kernel.scheduler.decisions }

    func checkerReports() -> [CheckerReport] {
        kernel.checkers.entries.map { CheckerReport(kind: $0.kind.rawValue, text: $0.text) }
    }

    func allocatedDevicePages() -> [Int: Int] {
        var pages: [Int: Int] = [:]
        for device in kernel.devices.compactMap({ $0 }) {
            pages[device.minor] = device.lock.withLock { device.pagesInUse }
        }
        return pages
    }
}

extension MMStruct {
    /// The bytes a load would see, without faulting. Caller holds mmap_lock.
    func peek(_ address: UInt64, _ count: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        var addr = address
        let end = address + UInt64(count)
        while addr < end {
            // access_error(): a load needs only an accessible VMA.
            guard let vma = vmaLookup(addr), vma.isAccessible else { return nil }
            let pageStart = addr & ~UInt64(pageSize - 1)
            let n = Int(min(end, pageStart + UInt64(pageSize)) - addr)
            let offset = Int(addr - pageStart)
            guard let page = ptl.withLock({ currentPage(vma, pageStart) }) else { return nil }
            if let page {
                let base = page.address(pageSize: pageSize) + offset
                bytes += UnsafeRawBufferPointer(start: base, count: n)
            } else {
                bytes += repeatElement(0, count: n)
            }
            addr += UInt64(n)
        }
        return bytes
    }

    /// The page whose bytes a load at `pageStart` reads (.some(nil): zeros, as a fault
    /// would fill); nil when the load would be SIGBUS. Where nothing is mapped, this is
    /// what the fault would find, without making it: hugetlb_no_page() (the file's page
    /// cache for a shared mapping; SIGBUS once the owner took the page back, past i_size,
    /// or with no page in the pool for it), shmem_fault() (the page cache, SIGBUS past i_size),
    /// do_anonymous_page() (zeros), and for the device file's mapping, whose VMA has no
    /// ->fault, do_fault()'s SIGBUS. Caller holds `ptl`.
    private func currentPage(_ vma: VMArea, _ pageStart: UInt64) -> PageRef?? {
        if let page = mappedPage(pageStart) {
            // A device-private page's bytes live in its backing page.
            return .some(page)
        }
        if vma.isHugetlb {
            guard !vma.hugetlbResv.contains(.unmapped), let inode = vma.hugetlbFile else { return nil }
            let haddr = pageStart & ~(hugetlbPageSize - 1)
            let index = hugetlbIndex(vma, haddr)
            guard index < inode.hugePages else { return nil }
            if vma.isShared, let cached = inode.lookup(index) {
                return .some(PageRef(cached, Int((pageStart - haddr) >> UInt64(pageShift))))
            }
            return hugetlbCanAllocate(vma, index) ? .some(nil) : nil
        }
        if let inode = vma.file {
            let index = vma.filePageIndex(pageStart, pageShift: pageShift)
            guard index < UInt64((inode.size + pageSize - 1) / pageSize) else { return nil }
            return .some(inode.cachedPage(index).map { PageRef($0, 0) })
        }
        if vma.isDeviceMapping { return nil }
        return .some(nil)
    }

    /// The page mapped at `addr` by any kind of entry, as its data's page. Caller holds `ptl`.
    func mappedPage(_ addr: UInt64) -> PageRef? {
        let pmdStart = addr & ~UInt64(pmdSize - 1)
        let index = Int((addr - pmdStart) >> UInt64(pageShift))
        switch pageTable.pmd(addr) {
        case nil: return nil
        case .table?: return pageTable.pte(addr).page
        case .huge(let f, _)?, .hugetlb(let f, _)?, .devicePrivate(let f, _)?, .migration(let f, _)?:
            return PageRef(f, index)
        }
    }
}

extension SimKernel {
    /// Every invariant the state breaks now, one line each.
    func invariantViolations() -> [String] { invariantReports().map(\.text) }

    /// The same, each with the checker it belongs to.
    func invariantReports() -> [CheckerReport] {
        let mms = liveMMs()
        var reports: [CheckerReport] = []
        for mm in mms {
            reports += mm.notifierSubscriptions.quiescentViolations().map {
                CheckerReport(kind: CheckerReports.Kind.unpairedInvalidation.rawValue, text: "mm: " + $0)
            }
        }
        reports += staleDeviceMappings().map { CheckerReport(kind: CheckerReports.Kind.staleMapping.rawValue, text: $0) }
        reports += mapCountMismatches(mms).map { CheckerReport(kind: "map count", text: $0) }
        return reports
    }

    /// A device page table entry must map what the CPU maps at its address, with no more access.
    private func staleDeviceMappings() -> [String] {
        var problems: [String] = []
        for dmirror in openMirrors() {
            let mm = dmirror.mm
            let entries = dmirror.mutex.withLock { dmirror.pt.entries() }
            mm.mmapLock.readLock()
            defer { mm.mmapLock.readUnlock() }
            for (vpfn, entry) in entries {
                let addr = vpfn << UInt64(mm.pageShift)
                let what = "device \(dmirror.unit) maps page 0x\(String(addr, radix: 16))"
                guard mm.vmaLookup(addr) != nil else {
                    problems.append("\(what), which has no VMA any more (stale device mapping)")
                    continue
                }
                let (current, writable, exclusive) = mm.ptl.withLock { mm.cpuMapping(addr) }
                guard let current else {
                    problems.append("\(what), which the CPU no longer maps (stale device mapping)")
                    continue
                }
                // A migration stores the backing page of a device-private page; a device
                // fault through hmm_range_fault() stores the device page itself.
                let backing = dmirror.mdevice.backingPage(current)
                if !(backing === entry.page) && !(current === entry.page) {
                    problems.append("\(what) to another page than the CPU maps there (stale device mapping)")
                } else if entry.tag == .write && !writable {
                    problems.append("\(what) writable, where the CPU may only read (stale device permission)")
                } else if entry.tag == .atomic && !exclusive {
                    problems.append("\(what) exclusive, where the CPU entry is not device-exclusive")
                }
            }
        }
        return problems
    }

    /// folio_mapcount() must equal the page table entries that map the folio.
    private func mapCountMismatches(_ mms: [MMStruct]) -> [String] {
        var counts: [ObjectIdentifier: (folio: Folio, entries: Int)] = [:]
        func count(_ folio: Folio) {
            counts[ObjectIdentifier(folio), default: (folio, 0)].entries += 1
        }
        for mm in mms {
            mm.ptl.withLock {
                for entry in mm.pageTable.pmds.values {
                    if case .table(let table) = entry {
                        for pte in table.entries { if let page = pte.page { count(page.folio) } }
                    } else if let folio = entry.folio {
                        count(folio)
                    }
                }
            }
        }
        return counts.values.compactMap { folio, entries in
            let mapcount = folio.mapcount.load(ordering: .relaxed)
            return mapcount == entries ? nil : "a \(folio.kind) folio is mapped \(entries) time(s) but its map count is \(mapcount)"
        }.sorted()
    }
}

extension MMStruct {
    /// What the CPU maps at `addr`: the page, whether writable, whether through a
    /// device-exclusive entry. Caller holds `ptl`.
    func cpuMapping(_ addr: UInt64) -> (PageRef?, Bool, Bool) {
        let pmdStart = addr & ~UInt64(pmdSize - 1)
        let index = Int((addr - pmdStart) >> UInt64(pageShift))
        switch pageTable.pmd(addr) {
        case nil: return (nil, false, false)
        case .table?:
            let pte = pageTable.pte(addr)
            if case .deviceExclusive(let p, let w) = pte { return (p, w, true) }
            if case .migration = pte { return (pte.page, pte.isWritable, false) }
            return (pte.page, pte.isWritable, false)
        case .huge(let f, let w)?, .hugetlb(let f, let w)?, .devicePrivate(let f, let w)?, .migration(let f, let w)?:
            return (PageRef(f, index), w, false)
        }
    }
}

extension DmirrorDevice {
    /// The page a `pt` entry holds for a CPU-mapped page: the backing page of a
    /// device-private page, the page itself otherwise.
    func backingPage(_ page: PageRef) -> PageRef {
        guard page.folio.isDevicePrivate, let backing = page.folio.zoneDeviceData else { return page }
        return PageRef(backing, page.index)
    }
}
