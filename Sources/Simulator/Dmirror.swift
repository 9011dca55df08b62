import ABI
import MachineInterface

/// A `pt` entry: struct page * tagged with DPT_XA_TAG_*.
struct DmirrorPTEntry {
    enum Tag { case read, write, atomic }  // untagged, DPT_XA_TAG_WRITE (3), DPT_XA_TAG_ATOMIC (1)
    let page: PageRef
    let tag: Tag
}

/// struct dmirror_bounce: the vmalloc'ed bounce buffer.
private final class DmirrorBounce {
    let addr: UInt64
    let size: Int
    var cpages: UInt64 = 0
    let ptr: UnsafeMutableRawPointer

    init(addr: UInt64, size: Int) {
        self.addr = addr
        self.size = size
        ptr = .allocate(byteCount: max(size, 1), alignment: 4096)
    }

    deinit { ptr.deallocate() }
}

/// struct dmirror (lib/test_hmm.c): one open file of /dev/hmm_dmirrorN,
/// mirroring the opener's mm through an mmu_interval_notifier.
///
/// `@unchecked Sendable`: `pt` and `flags` are protected by `mutex`
/// (dmirror->mutex), as in the driver.
final class Dmirror: DmirrorFile, @unchecked Sendable {
    let mdevice: DmirrorDevice
    /// dmirror->notifier.mm
    let mm: MMStruct
    private(set) var notifier: MMUIntervalNotifier!
    let mutex = SimMutex()
    /// dmirror->pt: keyed by virtual PFN.
    private var pt: [UInt64: DmirrorPTEntry] = [:]
    private var flags: UInt64 = 0
    private var released = false
    private let owner: SimProcess

    var unit: Int { mdevice.minor }
    private var pageSize: Int { mm.pageSize }
    private var pageShift: UInt64 { UInt64(mm.pageShift) }

    /// dmirror_fops_open().
    init(mdevice: DmirrorDevice, process: SimProcess) {
        self.mdevice = mdevice
        self.mm = process.mm
        self.owner = process
        let pageMask = ~UInt64(mm.pageSize - 1)
        notifier = MMUIntervalNotifier(mm: mm, start: 0, length: UInt64.max & pageMask) { [unowned self] n, range, seq in
            self.intervalInvalidate(n, range, seq)
        }
        mm.notifierSubscriptions.insert(notifier)
    }

    // MARK: notifier

    /// dmirror_interval_invalidate().
    private func intervalInvalidate(_ mni: MMUIntervalNotifier, _ range: MMUNotifierRange, _ curSeq: UInt64) -> Bool {
        // Migrations started by this device manage pt themselves.
        if range.event == .migrate && range.owner === mdevice { return true }
        if range.blockable { mutex.lock() } else if !mutex.tryLock() { return false }
        mni.setSeq(curSeq)
        doUpdate(range.start, range.end)
        mutex.unlock()
        return true
    }

    /// dmirror_do_update(): erase [start, end] (the last index is inclusive, as in the driver).
    private func doUpdate(_ start: UInt64, _ end: UInt64) {
        let first = start >> pageShift
        let last = end >> pageShift
        if last &- first > UInt64(pt.count) {
            pt = pt.filter { $0.key < first || $0.key > last }
        } else {
            var pfn = first
            while pfn <= last {
                pt.removeValue(forKey: pfn)
                if pfn == UInt64.max { break }
                pfn += 1
            }
        }
    }

    /// xa_erase() of `pages` entries from `addr` (dmirror_devmem_fault_alloc_and_copy).
    func erase(_ addr: UInt64, pages: Int) {
        mutex.withLock {
            let first = addr >> pageShift
            for k in 0..<UInt64(pages) { pt.removeValue(forKey: first + k) }
        }
    }

    /// Tests and clears HMM_DMIRROR_FLAG_FAIL_ALLOC (one-shot).
    func consumeFailAlloc() -> Bool {
        mutex.withLock {
            guard flags & DmirrorFlags.failAlloc.rawValue != 0 else { return false }
            flags &= ~DmirrorFlags.failAlloc.rawValue
            return true
        }
    }

    // MARK: file operations

    /// dmirror_fops_unlocked_ioctl(): the common prologue, then dispatch.
    func ioctl(request: UInt, _ cmdIn: inout DmirrorCmd) -> Result<Void, Errno> {
        guard !released else { return .failure(.EBADF) }
        // An unknown request is EINVAL, not ENOTTY: the driver's switch has a default of -EINVAL.
        guard let command = mdevice.kernel.configuration.abi.command(forRequest: request) else { return .failure(.EINVAL) }
        var cmd = cmdIn
        if cmd.addr & UInt64(pageSize - 1) != 0 { return .failure(.EINVAL) }
        if cmd.addr >= cmd.addr &+ (cmd.npages &<< pageShift) { return .failure(.EINVAL) }
        cmd.cpages = 0
        cmd.faults = 0
        let error: Errno?
        switch command {
        case .read: error = read(&cmd, unlocked: false)
        case .write: error = write(&cmd)
        case .migrateToDevice: error = migrateToDevice(&cmd)
        case .migrateToSystem: error = migrateToSystem(&cmd)
        case .snapshot: error = snapshot(&cmd)
        case .exclusive: error = exclusive(&cmd)
        case .checkExclusive: error = checkAtomic(cmd.addr, cmd.addr &+ (cmd.npages << pageShift))
        case .release:
            mdevice.removeChunks()
            error = nil
        case .flags:
            mutex.withLock { flags = cmd.npages }
            error = nil
        case .readUnlocked: error = read(&cmd, unlocked: true)
        }
        if let error { return .failure(error) }
        cmdIn = cmd
        return .success(())
    }

    /// dmirror_fops_release(): remove the notifier, evict every chunk of the device.
    func close() throws(Errno) {
        guard !released else { throw .EBADF }
        released = true
        mm.notifierSubscriptions.remove(notifier)
        for chunk in mdevice.devmemLock.withLock({ mdevice.chunks }) {
            mdevice.evictChunk(chunk)
        }
        mutex.withLock { pt.removeAll() }
        owner.forget(self)
    }

    // MARK: READ / WRITE

    private func userPointer(_ ptr: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(ptr))
    }

    /// dmirror_do_read(): copy pt pages into the bounce buffer; -ENOENT at the first hole.
    private func doRead(_ start: UInt64, _ end: UInt64, _ bounce: DmirrorBounce) -> Errno? {
        var dst = bounce.ptr + Int(start - bounce.addr)
        var pfn = start >> pageShift
        while pfn < end >> pageShift {
            guard let entry = pt[pfn] else { return .ENOENT }
            dst.copyMemory(from: entry.page.address(pageSize: pageSize), byteCount: pageSize)
            dst += pageSize
            bounce.cpages += 1
            pfn += 1
        }
        return nil
    }

    /// dmirror_do_write(): only WRITE-tagged entries count as present.
    private func doWrite(_ start: UInt64, _ end: UInt64, _ bounce: DmirrorBounce) -> Errno? {
        var src = bounce.ptr + Int(start - bounce.addr)
        var pfn = start >> pageShift
        while pfn < end >> pageShift {
            guard let entry = pt[pfn], entry.tag == .write else { return .ENOENT }
            entry.page.address(pageSize: pageSize).copyMemory(from: src, byteCount: pageSize)
            src += pageSize
            bounce.cpages += 1
            pfn += 1
        }
        return nil
    }

    /// dmirror_read() / dmirror_read_unlocked().
    private func read(_ cmd: inout DmirrorCmd, unlocked: Bool) -> Errno? {
        let size = Int(cmd.npages << pageShift)
        var start = cmd.addr
        let end = start &+ UInt64(size)
        if end < start { return .EINVAL }
        let bounce = DmirrorBounce(addr: start, size: size)
        var ret: Errno?
        while true {
            ret = mutex.withLock { doRead(start, end, bounce) }
            if ret != .ENOENT { break }
            start = cmd.addr + (bounce.cpages << pageShift)
            ret = unlocked ? faultUnlocked(start, end, write: false) : fault(start, end, write: false)
            if ret != nil { break }
            cmd.faults += 1
        }
        if ret == nil {
            if let user = userPointer(cmd.ptr) {
                user.copyMemory(from: bounce.ptr, byteCount: size)
            } else {
                ret = .EFAULT
            }
        }
        cmd.cpages = bounce.cpages
        return ret
    }

    /// dmirror_write().
    private func write(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = Int(cmd.npages << pageShift)
        var start = cmd.addr
        let end = start &+ UInt64(size)
        if end < start { return .EINVAL }
        let bounce = DmirrorBounce(addr: start, size: size)
        guard let user = userPointer(cmd.ptr) else { return .EFAULT }
        bounce.ptr.copyMemory(from: user, byteCount: size)
        var ret: Errno?
        while true {
            ret = mutex.withLock { doWrite(start, end, bounce) }
            if ret != .ENOENT { break }
            start = cmd.addr + (bounce.cpages << pageShift)
            ret = fault(start, end, write: true)
            if ret != nil { break }
            cmd.faults += 1
        }
        cmd.cpages = bounce.cpages
        return ret
    }

    // MARK: device faults

    private func makeRange(_ start: UInt64, _ end: UInt64, write: Bool, fault: Bool = true,
                           notifier: MMUIntervalNotifier? = nil) -> HMMRange {
        HMMRange(notifier: notifier ?? self.notifier, start: start, end: end, pageShift: mm.pageShift,
                 requestFault: fault, requestWrite: write, devPrivateOwner: mdevice)
    }

    /// dmirror_fault(): 32-page windows of dmirror_range_fault().
    private func fault(_ start: UInt64, _ end: UInt64, write: Bool) -> Errno? {
        guard mm.mmgetNotZero() else { return .EFAULT }
        defer { mm.mmput() }
        var addr = start
        while addr < end {
            let next = min(addr + UInt64(32 * pageSize), end)
            if let e = rangeFault(makeRange(addr, next, write: write)) { return e }
            addr = next
        }
        return nil
    }

    /// dmirror_fault_unlocked().
    private func faultUnlocked(_ start: UInt64, _ end: UInt64, write: Bool) -> Errno? {
        guard mm.mmgetNotZero() else { return .EFAULT }
        defer { mm.mmput() }
        var addr = start
        while addr < end {
            let next = min(addr + UInt64(32 * pageSize), end)
            if let e = rangeFaultUnlocked(makeRange(addr, next, write: write)) { return e }
            addr = next
        }
        return nil
    }

    /// dmirror_range_fault(): the read_begin / hmm_range_fault / read_retry loop.
    private func rangeFault(_ range: HMMRange) -> Errno? {
        let timeout = monotonicMilliseconds() + 1000  // HMM_RANGE_DEFAULT_TIMEOUT
        while true {
            if monotonicMilliseconds() > timeout { return .EBUSY }
            range.notifierSeq = range.notifier.readBegin()
            mm.mmapLock.readLock()
            let ret = mm.hmmRangeFault(range)
            mm.mmapLock.readUnlock()
            if let ret {
                if ret == .EBUSY { continue }
                return ret
            }
            mutex.lock()
            if range.notifier.readRetry(range.notifierSeq) {
                mutex.unlock()
                continue
            }
            break
        }
        let ret = doFault(range)
        mutex.unlock()
        return ret
    }

    /// dmirror_range_fault_unlocked(): hmm_range_fault_unlocked_timeout(range, 0).
    private func rangeFaultUnlocked(_ range: HMMRange) -> Errno? {
        while true {
            if let ret = mm.hmmRangeFaultUnlockedTimeout(range) { return ret }
            mutex.lock()
            if range.notifier.readRetry(range.notifierSeq) {
                mutex.unlock()
                continue
            }
            break
        }
        let ret = doFault(range)
        mutex.unlock()
        return ret
    }

    /// dmirror_do_fault(): store the faulted pages in pt. Caller holds `mutex`.
    private func doFault(_ range: HMMRange) -> Errno? {
        var pfn = range.start >> pageShift
        for hmm in range.hmmPfns {
            guard let page = hmm.page, hmm.flags.contains(.valid) else { return .EFAULT }
            if hmm.flags.contains(.write) {
                pt[pfn] = DmirrorPTEntry(page: page, tag: .write)
            } else if range.requestWrite {
                return .EFAULT
            } else {
                pt[pfn] = DmirrorPTEntry(page: page, tag: .read)
            }
            pfn += 1
        }
        return nil
    }

    // MARK: MIGRATE_TO_DEV / MIGRATE_TO_SYS

    /// dmirror_migrate_to_device().
    private func migrateToDevice(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = Int(cmd.npages << pageShift)
        let start = cmd.addr
        let end = start &+ UInt64(size)
        if end < start { return .EINVAL }
        guard mm.mmgetNotZero() else { return .EINVAL }
        mm.mmapLock.readLock()
        var addr = start
        while addr < end {
            guard let vma = mm.vmaLookup(addr), vma.flags.contains(.read) else {
                mm.mmapLock.readUnlock()
                mm.mmput()
                return .EINVAL
            }
            var next = min(end, addr + UInt64(mm.pageTable.ptrsPerPTE * pageSize))
            if next > vma.end { next = vma.end }
            let args = MigrateVMA(mm: mm, vma: vma, start: addr, end: next, pgmapOwner: mdevice,
                                  flags: [.system, .compound])
            if let e = mm.migrateVMASetup(args) {
                mm.mmapLock.readUnlock()
                mm.mmput()
                return e
            }
            migrateAllocAndCopy(args)
            mm.migrateVMAPages(args)
            finalizeAndMap(args)
            mm.migrateVMAFinalize(args)
            addr = next
        }
        mm.mmapLock.readUnlock()
        mm.mmput()
        return readBack(&cmd, start, end, size)
    }

    /// Return the migrated data for verification: the whole range from pt.
    private func readBack(_ cmd: inout DmirrorCmd, _ start: UInt64, _ end: UInt64, _ size: Int) -> Errno? {
        let bounce = DmirrorBounce(addr: start, size: size)
        var ret = mutex.withLock { doRead(start, end, bounce) }
        if ret == nil {
            if let user = userPointer(cmd.ptr) {
                user.copyMemory(from: bounce.ptr, byteCount: size)
            } else {
                ret = .EFAULT
            }
        }
        cmd.cpages = bounce.cpages
        return ret
    }

    /// dmirror_migrate_alloc_and_copy().
    private func migrateAllocAndCopy(_ args: MigrateVMA) {
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
                    mdevice.backingFolio(small).mirror = self
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
            mdevice.backingFolio(dpage).mirror = self
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
    private func finalizeAndMap(_ args: MigrateVMA) {
        mutex.withLock {
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
    private func migrateToSystem(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = cmd.npages << pageShift
        let start = cmd.addr
        let end = start &+ size
        if end < start { return .EINVAL }
        guard mm.mmgetNotZero() else { return .EINVAL }
        defer { mm.mmput() }
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        cmd.cpages = 0
        var addr = start
        while addr < end {
            guard let vma = mm.vmaLookup(addr), vma.flags.contains(.read) else { return .EINVAL }
            var next = min(end, addr + UInt64(mm.pageTable.ptrsPerPTE * pageSize))
            if next > vma.end { next = vma.end }
            let args = MigrateVMA(mm: mm, vma: vma, start: addr, end: next, pgmapOwner: mdevice,
                                  flags: mdevice.select.union(.compound))
            if let e = mm.migrateVMASetup(args) { return e }
            if !mdevice.devmemFaultAllocAndCopy(args, self) {
                mm.migrateVMAFinalize(args)
                return .ENOMEM
            }
            mm.migrateVMAPages(args)
            // dmirror_successful_migrated_pages()
            cmd.cpages += UInt64(args.src.lazy.filter { $0.flags.contains([.valid, .migrate]) }.count)
            mm.migrateVMAFinalize(args)
            addr = next
        }
        return nil
    }

    // MARK: SNAPSHOT

    /// dmirror_snapshot(): 32-page windows, never faulting.
    private func snapshot(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = cmd.npages << pageShift
        let start = cmd.addr
        let end = start &+ size
        if end < start { return .EINVAL }
        guard mm.mmgetNotZero() else { return .EINVAL }
        defer { mm.mmput() }
        var uptr = userPointer(cmd.ptr)
        var perm = [UInt8](repeating: 0, count: 32)
        var addr = start
        while addr < end {
            let next = min(addr + UInt64(32 * pageSize), end)
            if let e = rangeSnapshot(addr, next, &perm) { return e }
            let n = Int((next - addr) >> pageShift)
            guard let dst = uptr else { return .EFAULT }
            perm.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: n) }
            cmd.cpages += UInt64(n)
            uptr = dst + n
            addr = next
        }
        return nil
    }

    /// dmirror_range_snapshot(): a temporary interval notifier over the window.
    private func rangeSnapshot(_ start: UInt64, _ end: UInt64, _ perm: inout [UInt8]) -> Errno? {
        let temporary = MMUIntervalNotifier(mm: mm, start: start, length: end - start) { [unowned self] n, range, seq in
            // dmirror_snapshot_invalidate(): only bump the sequence.
            if range.blockable { self.mutex.lock() } else if !self.mutex.tryLock() { return false }
            n.setSeq(seq)
            self.mutex.unlock()
            return true
        }
        mm.notifierSubscriptions.insert(temporary)
        defer { mm.notifierSubscriptions.remove(temporary) }
        let range = makeRange(start, end, write: false, fault: false, notifier: temporary)
        let timeout = monotonicMilliseconds() + 1000
        while true {
            if monotonicMilliseconds() > timeout { return .EBUSY }
            range.notifierSeq = temporary.readBegin()
            mm.mmapLock.readLock()
            let ret = mm.hmmRangeFault(range)
            mm.mmapLock.readUnlock()
            if let ret {
                if ret == .EBUSY { continue }
                return ret
            }
            mutex.lock()
            if temporary.readRetry(range.notifierSeq) {
                mutex.unlock()
                continue
            }
            break
        }
        for (i, entry) in range.hmmPfns.enumerated() { perm[i] = mkentry(entry) }
        mutex.unlock()
        return nil
    }

    /// dmirror_mkentry().
    private func mkentry(_ entry: HMMPfn) -> UInt8 {
        if entry.flags.contains(.error) { return 0xFF }      // HMM_DMIRROR_PROT_ERROR
        guard entry.flags.contains(.valid), let page = entry.page else { return 0x00 }
        var perm: UInt8
        let folio = page.folio
        if folio.isDevicePrivate {
            perm = folio.pgmap?.mdevice === mdevice ? 0x20 : 0x30
        } else if folio.isDeviceCoherent {
            perm = folio.pgmap?.mdevice === mdevice ? 0x40 : 0x50
        } else if folio.kind == .zero {
            perm = 0x10
        } else {
            perm = 0x00
        }
        perm |= entry.flags.contains(.write) ? 0x02 : 0x01
        let shift = entry.mapOrder + mm.pageShift
        if entry.mapOrder > 0 && shift == mm.kernel.pmdShift {
            perm |= 0x04
        } else if entry.mapOrder > 0 && shift == mm.kernel.pudShift {
            perm |= 0x08
        }
        return perm
    }

    // MARK: EXCLUSIVE

    /// dmirror_exclusive(): make_device_exclusive() per page, stored ATOMIC, then read back.
    private func exclusive(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = Int(cmd.npages << pageShift)
        let start = cmd.addr
        let end = start &+ UInt64(size)
        if end < start { return .EINVAL }
        guard mm.mmgetNotZero() else { return .EINVAL }
        mm.mmapLock.readLock()
        var ret: Errno?
        var addr = start
        while ret == nil && addr < end {
            switch mm.makeDeviceExclusive(addr, owner: nil) {
            case .failure(let e): ret = e
            case .success(let page):
                mutex.withLock { pt[addr >> pageShift] = DmirrorPTEntry(page: page, tag: .atomic) }
            }
            addr += UInt64(pageSize)
        }
        mm.mmapLock.readUnlock()
        mm.mmput()
        if let ret { return ret }
        return readBack(&cmd, start, end, size)
    }

    /// dmirror_check_atomic().
    private func checkAtomic(_ start: UInt64, _ end: UInt64) -> Errno? {
        mutex.withLock {
            var pfn = start >> pageShift
            while pfn < end >> pageShift {
                if pt[pfn]?.tag == .atomic { return .EPERM }
                pfn += 1
            }
            return nil
        }
    }
}

extension MMStruct {
    /// hmm_range_fault_unlocked_timeout(range, 0): takes mmap_lock itself and
    /// lets faults drop it (userfaultfd), re-walking until stable.
    func hmmRangeFaultUnlockedTimeout(_ range: HMMRange) -> Errno? {
        while true {
            range.notifierSeq = range.notifier.readBegin()
            mmapLock.readLock()
            var locked = true
            let ret = hmmRangeFault(range, locked: &locked)
            if locked { mmapLock.readUnlock() }
            if ret == .EBUSY { continue }
            return ret
        }
    }

    /// make_device_exclusive(): fault the page in writable (GUP with
    /// FOLL_WRITE|FOLL_SPLIT_PMD), then replace its PTE by a device-exclusive entry.
    func makeDeviceExclusive(_ addr: UInt64, owner: AnyObject?) -> Result<PageRef, Errno> {
        while true {
            guard let vma = vmaLookup(addr), vma.flags.contains(.read) else { return .failure(.EFAULT) }
            guard vma.flags.contains(.write) else { return .failure(.EFAULT) }
            if vma.isHugetlb { return .failure(.EOPNOTSUPP) }
            let haddr = addr & ~UInt64(pmdSize - 1)
            if case .huge? = ptl.withLock({ pageTable.pmd(addr) }) {
                splitHugePMDAddressForce(haddr)
            }
            let current = ptl.withLock { pageTable.pte(addr) }
            guard case .present(let page, true) = current else {
                let r = handleMMFault(vma, addr, [.write, .remote])
                if let e = r.errno { return .failure(e) }
                if case .huge? = ptl.withLock({ pageTable.pmd(addr) }) { splitHugePMDAddressForce(haddr) }
                continue
            }
            guard page.folio.isAnon else { return .failure(.EOPNOTSUPP) }
            let done = withInvalidation(.exclusive, addr, addr + UInt64(pageSize), owner: owner) {
                ptl.withLock { () -> Bool in
                    guard case .present(let p, let w) = pageTable.pte(addr), p === page else { return false }
                    pageTable.setPTE(addr, .deviceExclusive(page, writable: w))
                    return true
                }
            }
            if done { return .success(page) }
        }
    }
}
