import ABI
import MachineInterface

// lib/test_hmm.c: struct dmirror, one open file of /dev/hmm_dmirrorN, and its
// file operations (open, release, mmap). The device page table `pt` and the
// notifier that keeps it coherent with the CPU's page tables live here; the
// ioctls are in dmirror_ioctl.swift and the files it dispatches to.

/// A `pt` entry: struct page * tagged with DPT_XA_TAG_*.
struct DmirrorPTEntry {
    enum Tag { case read, write, atomic }  // untagged, DPT_XA_TAG_WRITE (3), DPT_XA_TAG_ATOMIC (1)
    let page: PageRef
    let tag: Tag
}

/// struct dmirror: one open file of /dev/hmm_dmirrorN, mirroring the opener's
/// mm through an mmu_interval_notifier.
///
/// `@unchecked Sendable`: `pt` and `flags` are protected by `mutex`
/// (dmirror->mutex), as in the driver.
final class Dmirror: DmirrorFile, @unchecked Sendable {
    let mdevice: DmirrorDevice
    /// dmirror->notifier.mm
    let mm: MMStruct
    /// Nil only in the plain-notifier variant, whose paths never use it.
    private(set) var notifier: MMUIntervalNotifier!
    /// The plain-notifier variant's mirror, instead of the interval notifier.
    private(set) var plain: PlainNotifierMirror?
    let mutex: KernelLock
    /// dmirror->pt: keyed by virtual PFN. Under `mutex`.
    let pt = DmirrorPageTable()
    /// dmirror->flags (HMM_DMIRROR_FLAGS). Under `mutex`.
    var flags: UInt64 = 0
    private(set) var released = false
    let owner: SimProcess

    var unit: Int { mdevice.minor }
    var pageSize: Int { mm.pageSize }
    var pageShift: UInt64 { UInt64(mm.pageShift) }

    /// dmirror_fops_open(): the notifier covers the opener's whole address space.
    init(mdevice: DmirrorDevice, process: SimProcess) {
        self.mdevice = mdevice
        self.mm = process.mm
        self.owner = process
        mutex = KernelLock(process.kernel.scheduler, .dmirrorMutex)
        mm.kernel.register(self)
        if mm.kernel.has(.plainNotifierDeviceLock) {
            plain = PlainNotifierMirror(self)
            return
        }
        let pageMask = ~UInt64(mm.pageSize - 1)
        notifier = MMUIntervalNotifier(
            mm: mm, start: 0, length: UInt64.max & pageMask, owner: mdevice,
            mappings: { [unowned self] start, end in self.mappedAddresses(start, end) }
        ) { [unowned self] n, range, seq in
            self.intervalInvalidate(n, range, seq)
        }
        mm.notifierSubscriptions.insert(notifier)
    }

    // MARK: The notifier

    /// dmirror_interval_invalidate(). Migrations this device started manage `pt`
    /// themselves; any other invalidation erases the range under the mutex
    /// (trylock when the caller cannot sleep) and bumps the sequence.
    private func intervalInvalidate(_ mni: MMUIntervalNotifier, _ range: MMUNotifierRange, _ curSeq: UInt64) -> Bool {
        // The owner filter; the no-owner-filter variant acts on its own migrations too.
        if range.event == .migrate && range.owner === mdevice && !mm.kernel.has(.noOwnerFilter) { return true }
        if range.blockable { mutex.lock() } else if !mutex.tryLock() { return false }
        defer { mutex.unlock() }
        mni.setSeq(curSeq)
        doUpdate(range.start, range.end)
        return true
    }

    /// dmirror_do_update(): erase [start, end] (the last index is inclusive, as in the driver).
    private func doUpdate(_ start: UInt64, _ end: UInt64) {
        pt.erase(start >> pageShift, through: end >> pageShift)
    }

    /// The addresses in [start, end) that `pt` maps (the notifier checker's question).
    /// Read without the mutex: a checker's look takes no scheduling point, and only
    /// the running task touches `pt`.
    func mappedAddresses(_ start: UInt64, _ end: UInt64) -> [UInt64] {
        pt.present(start >> pageShift, through: (end &- 1) >> pageShift).map { $0 << pageShift }
    }

    /// dmirror_do_update() for a plain notifier's [start, end). Caller holds `mutex`.
    func erase(_ start: UInt64, _ end: UInt64) { doUpdate(start, end &- 1) }

    /// xa_erase() of `pages` entries from `addr` (dmirror_devmem_fault_alloc_and_copy()):
    /// the xarray's own lock, not dmirror->mutex, and no scheduling point in between.
    func erase(_ addr: UInt64, pages: Int) {
        let first = addr >> pageShift
        pt.erase(first, through: first + UInt64(pages) - 1)
    }

    /// Tests and clears HMM_DMIRROR_FLAG_FAIL_ALLOC (one-shot).
    func consumeFailAlloc() -> Bool {
        mutex.withLock {
            guard flags & DmirrorFlags.failAlloc.rawValue != 0 else { return false }
            flags &= ~DmirrorFlags.failAlloc.rawValue
            return true
        }
    }

    // MARK: File operations

    /// dmirror_fops_release(): remove the notifier, evict every chunk of the device.
    func close() throws(Errno) {
        guard !released else { throw .EBADF }
        released = true
        if let plain { plain.unregister(mm) } else { mm.notifierSubscriptions.remove(notifier) }
        for chunk in mdevice.devmemLock.withLock({ mdevice.chunks }) {
            mdevice.evictChunk(chunk)
        }
        mutex.withLock { pt.removeAll() }
        owner.forget(self)
    }

    /// dmirror_fops_mmap(): a zeroed kernel page per page of the VMA, vm_insert_page().
    /// A private mapping gets read-only PTEs. Caller holds mmap_lock for write.
    func fopsMmap(_ mm: MMStruct, _ vma: VMArea) {
        let writable = vma.isShared && vma.flags.contains(.write)
        mm.ptl.withLock {
            var a = vma.start
            while a < vma.end {
                let page = mm.kernel.allocFolio(.kernel, order: 0)
                mm.pageTable.setPTE(a, .present(PageRef(page, 0), writable: writable))
                a += UInt64(pageSize)
            }
        }
    }
}
