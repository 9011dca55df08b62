import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

/// A simulated process: the `Machine` protocol on top of an `MMStruct`.
/// System calls take mmap_lock as the kernel does; CPU loads and stores walk
/// the pages in order and call handle_mm_fault() where the TLB would miss.
///
/// `@unchecked Sendable`: the open-file list is protected by `lock`; the mm
/// has its own locks.
final class SimProcess: Machine, @unchecked Sendable {
    let kernel: SimKernel
    let mm: MMStruct
    let pid: Int32
    let isChild: Bool
    private let lock = SimMutex()
    private var openMirrors: [Dmirror] = []

    init(kernel: SimKernel, mm: MMStruct, pid: Int32, isChild: Bool) {
        self.kernel = kernel
        self.mm = mm
        self.pid = pid
        self.isChild = isChild
    }

    var pageSize: Int { kernel.configuration.pageSize }
    var pmdPageSize: Int { kernel.configuration.pmdSize }
    var defaultHugePageSize: Int { kernel.configuration.hugetlbPageSize }
    func freeHugePages() -> Int { kernel.hugetlbPool.freePages }
    @discardableResult func reserveHugePages(_ count: Int) -> Bool { kernel.hugetlbPool.reserve(count) }

    private var pageMask: UInt64 { UInt64(pageSize - 1) }
    private func pageAlign(_ length: Int) -> UInt64 { (UInt64(length) + pageMask) & ~pageMask }

    // MARK: mmap

    func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
              source: MappingSource, offset: Int) throws(Errno) -> UInt64 {
        guard length > 0, offset >= 0, UInt64(offset) & pageMask == 0 else { throw .EINVAL }
        let shared = flags.contains(.shared)
        guard shared != flags.contains(.private) else { throw .EINVAL }
        let hugetlb = flags.contains(.hugetlb)
        let align = UInt64(hugetlb ? kernel.configuration.hugetlbPageSize : pageSize)
        let len = (UInt64(length) + align - 1) & ~(align - 1)

        var vmFlags: VMFlags = [.mayWrite]
        if protection.contains(.read) || protection.contains(.write) || protection.contains(.exec) { vmFlags.insert(.read) }
        if protection.contains(.write) { vmFlags.insert(.write) }
        if protection.contains(.exec) { vmFlags.insert(.exec) }
        if shared { vmFlags.insert(.shared) }
        if hugetlb { vmFlags.insert(.hugetlb) }

        var file: ShmemInode?
        var device: Dmirror?
        switch source {
        case .anonymous:
            guard flags.contains(.anonymous) || hugetlb else { throw .EBADF }
            if shared && !hugetlb { file = ShmemInode(size: Int(len), pageSize: pageSize) }
        case .file(let f):
            guard let simFile = f as? SimFile else { throw .EBADF }
            file = simFile.inode
        case .device(let d):
            guard let dm = d.file as? Dmirror else { throw .EBADF }
            device = dm
            vmFlags.insert(.mixedmap)
        }
        if hugetlb {
            guard kernel.hugetlbPool.freePages >= Int(len / align) else { throw .ENOMEM }
        }

        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        let start: UInt64
        if flags.contains(.fixed) || flags.contains(.fixedNoReplace) {
            guard let address, address & (align - 1) == 0 else { throw .EINVAL }
            if flags.contains(.fixedNoReplace) && !mm.vmas(in: address, address + len).isEmpty { throw .EEXIST }
            mm.doMunmap(address, address + len)
            start = address
        } else if let address, address != 0, address & (align - 1) == 0,
                  mm.vmas(in: address, address + len).isEmpty, address >= mm.mmapMin {
            start = address
        } else {
            // thp_get_unmapped_area(): PMD-multiple anonymous mappings are PMD aligned.
            var a = align
            if !shared && file == nil && device == nil && !hugetlb && len % UInt64(pmdPageSize) == 0 {
                a = UInt64(pmdPageSize)
            }
            guard let found = mm.getUnmappedArea(length: len, align: a) else { throw .ENOMEM }
            start = found
        }
        // vm_pgoff: the file offset; for private anonymous memory the address (vma_set_anonymous() callers).
        let pgoff = source.isAnonymous && !shared ? start >> UInt64(mm.pageShift) : UInt64(offset) >> UInt64(mm.pageShift)
        let vma = VMArea(start: start, end: start + len, flags: vmFlags, file: file,
                         pgoff: pgoff, isDeviceMapping: device != nil)
        mm.insertVMA(vma)
        if device != nil {
            // dmirror_fops_mmap(): a zeroed kernel page per page, vm_insert_page().
            let writable = shared && vmFlags.contains(.write)
            mm.ptl.withLock {
                var a = start
                while a < start + len {
                    let page = kernel.allocFolio(.kernel, order: 0)
                    mm.pageTable.setPTE(a, .present(PageRef(page, 0), writable: writable))
                    a += UInt64(pageSize)
                }
            }
        }
        if flags.contains(.populate) {
            var a = start
            while a < start + len {
                _ = mm.handleMMFault(vma, a, vmFlags.contains(.write) && !shared ? [.write] : [])
                a += UInt64(pageSize)
            }
        }
        // vma_merge_new_range()
        if device == nil { mm.mergeVMAs(around: start, start + len) }
        return start
    }

    func munmap(_ address: UInt64, length: Int) throws(Errno) {
        guard address & pageMask == 0, length > 0 else { throw .EINVAL }
        var len = pageAlign(length)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        if let vma = mm.vmaLookup(address), vma.isHugetlb {
            let h = UInt64(kernel.configuration.hugetlbPageSize)
            guard address & (h - 1) == 0 else { throw .EINVAL }
            len = (len + h - 1) & ~(h - 1)
        }
        mm.doMunmap(address, address + len)
    }

    func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        guard address & pageMask == 0 else { throw .EINVAL }
        guard length > 0 else { return }
        let end = address + pageAlign(length)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        // do_mprotect_pkey(): the VMAs are changed in order; a hole ends the
        // walk with ENOMEM, after the VMAs before it were changed.
        var cursor = address
        var error: Errno?
        for vma in mm.vmas(in: address, end) {
            if vma.start > cursor {
                error = .ENOMEM
                break
            }
            cursor = vma.end
        }
        if error == nil && cursor < end { error = .ENOMEM }
        let changeEnd = min(cursor, end)
        let removingWrite = !protection.contains(.write)
        for vma in mm.vmas(in: address, changeEnd) {
            var newFlags = vma.flags
            newFlags.remove([.read, .write, .exec])
            if protection.contains(.read) || protection.contains(.write) || protection.contains(.exec) {
                newFlags.insert(.read)
            }
            if protection.contains(.write) { newFlags.insert(.write) }
            if protection.contains(.exec) { newFlags.insert(.exec) }
            // mprotect_fixup(): nothing to do (no split, no notifier) when the flags stay.
            if newFlags == vma.flags { continue }
            let s = max(vma.start, address), e = min(vma.end, changeEnd)
            for piece in mm.isolate(s, e) { piece.flags = newFlags }
            // change_protection(): MMU_NOTIFY_PROTECTION_VMA over the range.
            mm.withInvalidation(.protectionVMA, s, e) {
                guard removingWrite else { return }
                mm.ptl.withLock { mm.wrprotectRangeLocked(s, e) }
            }
            mm.mergeVMAs(around: s, e)
        }
        if let error { throw error }
    }

    func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        guard address & pageMask == 0 else { throw .EINVAL }
        guard length > 0 else { return }
        let end = address + pageAlign(length)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        let mapped = mm.isFullyMapped(address, end)
        switch advice {
        case .hugePage, .noHugePage:
            for vma in mm.vmas(in: address, end) {
                var newFlags = vma.flags
                if advice == .hugePage {
                    newFlags.remove(.nohugepage)
                    newFlags.insert(.hugepage)
                } else {
                    newFlags.remove(.hugepage)
                    newFlags.insert(.nohugepage)
                }
                // madvise_update_vma(): unchanged flags leave the VMA alone.
                if newFlags == vma.flags { continue }
                let s = max(vma.start, address), e = min(vma.end, end)
                for piece in mm.isolate(s, e) { piece.flags = newFlags }
                mm.mergeVMAs(around: s, e)
            }
        case .dontNeed:
            for vma in mm.vmas(in: address, end) {
                let s = max(vma.start, address), e = min(vma.end, end)
                mm.splitHugePMDAddress(s)
                mm.splitHugePMDAddress(e)
                mm.withInvalidation(.clear, s, e) { mm.ptl.withLock { mm.zapPageRangeLocked(s, e) } }
            }
        case .free:
            // MADV_FREE only marks clean anonymous pages lazily freeable; device
            // entries are skipped. Without memory pressure nothing is discarded.
            for vma in mm.vmas(in: address, end) where !vma.isAnonymous { throw .EINVAL }
        case .collapse:
            try mm.collapse(address, end)
        default:
            throw .EINVAL
        }
        if !mapped { throw .ENOMEM }
    }

    func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                newAddress: UInt64?) throws(Errno) -> UInt64 {
        // check_mremap_params()
        guard address & pageMask == 0, newSize > 0 else { throw .EINVAL }
        if flags.contains(.fixed) && !flags.contains(.mayMove) { throw .EINVAL }
        if flags.contains(.dontUnmap) && (!flags.contains(.mayMove) || oldSize != newSize) { throw .EINVAL }
        let oldLen = pageAlign(oldSize), newLen = pageAlign(newSize)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        // check_prep_vma(): only a VMA at `address` is needed to shrink or keep
        // the size in place (shrink_vma() unmaps the tail, whatever maps it).
        guard let vma = mm.vmaLookup(address) else { throw .EFAULT }
        let mapsNew = flags.contains(.fixed) || flags.contains(.dontUnmap) || newLen > oldLen
        if !mapsNew {
            if newLen < oldLen { mm.doMunmap(address + newLen, address + oldLen) }
            return address
        }
        // A zero old_len would duplicate the mapping: refused for private mappings.
        if oldLen == 0 && !vma.isShared { throw .EINVAL }
        guard address + oldLen <= vma.end else { throw .EFAULT }
        if !flags.contains(.fixed) && !flags.contains(.dontUnmap) {
            if vma.end == address + oldLen && mm.vmas(in: address + oldLen, address + newLen).isEmpty {
                // vma_expand(), then a merge with the next VMA if it is alike.
                vma.end = address + newLen
                mm.mergeVMAs(around: address, address + newLen)
                return address
            }
            guard flags.contains(.mayMove) else { throw .ENOMEM }
        }
        let target: UInt64
        if flags.contains(.fixed) {
            guard let newAddress, newAddress & pageMask == 0 else { throw .EINVAL }
            if newAddress < address + oldLen && address < newAddress + newLen { throw .EINVAL }
            mm.doMunmap(newAddress, newAddress + newLen)
            target = newAddress
        } else {
            guard let found = mm.getUnmappedArea(length: newLen, align: UInt64(pageSize)) else { throw .ENOMEM }
            target = found
        }
        mm.moveVMA(address, oldLen, to: target, newLen, dontUnmap: flags.contains(.dontUnmap))
        // copy_vma() merges the moved VMA with its new neighbours when alike.
        if !vma.isDeviceMapping { mm.mergeVMAs(around: target, target + newLen) }
        return target
    }

    // MARK: CPU access

    func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        access(address, buffer.count, write: false) { offset, page, n in
            (base + offset).copyMemory(from: page, byteCount: n)
        }
    }

    func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        access(address, buffer.count, write: true) { offset, page, n in
            page.copyMemory(from: base + offset, byteCount: n)
        }
    }

    /// The MMU: translate page by page, fault where needed, copy with the page table lock held.
    private func access(_ address: UInt64, _ count: Int, write: Bool,
                        _ copy: (Int, UnsafeMutableRawPointer, Int) -> Void) {
        mm.mmapLock.readLock()
        var done = 0
        while done < count {
            let addr = address + UInt64(done)
            guard let vma = mm.vmaLookup(addr),
                  write ? vma.flags.contains(.write) : vma.flags.contains(.read) else {
                mm.mmapLock.readUnlock()
                fatalSignal(.segv)
            }
            mm.ptl.lock()
            if let (page, avail) = mm.translate(addr, write: write) {
                let n = min(avail, count - done)
                copy(done, page, n)
                mm.ptl.unlock()
                done += n
                continue
            }
            mm.ptl.unlock()
            switch mm.handleMMFault(vma, addr, write ? [.write, .user, .allowRetry] : [.user, .allowRetry]) {
            case .done, .oom:
                continue
            case .retry:
                mm.mmapLock.readLock()
            case .sigbus:
                mm.mmapLock.readUnlock()
                fatalSignal(.bus)
            case .sigsegv:
                mm.mmapLock.readUnlock()
                fatalSignal(.segv)
            }
        }
        mm.mmapLock.readUnlock()
    }

    /// The kernel answers the access with a fatal signal.
    private func fatalSignal(_ signal: Signal) -> Never {
        if isChild, let child = SimChild.current {
            child.terminate(by: signal)
        }
        Glibc.signal(signal.rawValue, SIG_DFL)
        raise(signal.rawValue)
        abort()
    }

    // MARK: Files and devices

    func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile {
        guard size >= 0 else { throw .EINVAL }
        return SimFile(inode: ShmemInode(size: size, pageSize: pageSize))
    }

    func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        guard unit >= 0, unit < kernel.devices.count, let mdevice = kernel.devices[unit] else { throw .ENOENT }
        let dmirror = Dmirror(mdevice: mdevice, process: self)
        lock.withLock { openMirrors.append(dmirror) }
        return MirrorDevice(file: dmirror, abi: kernel.configuration.abi)
    }

    func forget(_ dmirror: Dmirror) {
        lock.withLock { openMirrors.removeAll { $0 === dmirror } }
    }

    func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 {
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        return mm.pagemapEntry(address)
    }

    func openGupTest() throws(Errno) -> any GupTestFile {
        guard kernel.configuration.gupTestAvailable else { throw .ENOENT }
        return SimGupTestFile(process: self)
    }

    func userfaultfd() throws(Errno) -> any UserfaultFile {
        guard kernel.configuration.userfaultfdAvailable else { throw .ENOSYS }
        return SimUserfaultFile(process: self)
    }

    func eventfd() throws(Errno) -> any EventFile { SimEventFile() }

    // MARK: Threads and time

    func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread {
        try SimThread(body)
    }

    func sleep(nanoseconds: UInt64) { hostSleep(nanoseconds: nanoseconds) }

    func random() -> UInt32 { kernel.random() }

    // MARK: Processes

    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        mm.mmapLock.writeLock()
        let childMM = mm.dupMmap()
        mm.mmapLock.writeUnlock()
        let process = kernel.makeProcess(mm: childMM, isChild: true)
        return SimChild(process: process, body: child)
    }

    /// do_exit(): files are released, then the mm.
    func exit() {
        let files = lock.withLock { openMirrors }
        for f in files { try? f.close() }
        mm.mmput()
    }
}

/// A forked simulated child. It is not a real process: its body runs, on its
/// own host thread, when the parent waits for it; a kill before that means it
/// never runs. `@unchecked Sendable`: state under `lock`.
final class SimChild: ChildProcess, @unchecked Sendable {
    let process: SimProcess
    private let lock = SimMutex()
    private var body: ((any Machine) throws -> Int32)?
    private var status: ExitStatus?

    nonisolated(unsafe) private static var currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The child whose body runs on this thread.
    static var current: SimChild? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<SimChild>.fromOpaque(raw).takeUnretainedValue()
    }

    init(process: SimProcess, body: @escaping (any Machine) throws -> Int32) {
        self.process = process
        self.body = body
    }

    var pid: Int32 { process.pid }

    func kill(_ signal: Signal) throws(Errno) {
        lock.withLock {
            if status == nil && body != nil {
                body = nil
                status = .signaled(signal)
                process.exit()
            }
        }
    }

    func wait() throws(Errno) -> ExitStatus {
        let pending = lock.withLock { () -> ((any Machine) throws -> Int32)? in
            let b = body
            body = nil
            return b
        }
        if let pending {
            final class Box: @unchecked Sendable {
                let run: () -> Void
                init(_ run: @escaping () -> Void) { self.run = run }
            }
            let box = Box { [self] in
                pthread_setspecific(SimChild.currentKey, Unmanaged.passUnretained(self).toOpaque())
                let code: Int32
                do { code = try pending(process) } catch { code = 1 }
                // do_exit((code & 0xff) << 8): waitpid sees the low byte.
                finish(.exited(code & 0xff))
            }
            let thread = try SimThread { box.run() }
            thread.join()
        }
        return lock.withLock { status ?? .exited(0) }
    }

    private func finish(_ result: ExitStatus) {
        lock.withLock { if status == nil { status = result } }
        process.exit()
    }

    /// A fatal signal in the child: it ends here, on its own thread.
    func terminate(by signal: Signal) -> Never {
        finish(.signaled(signal))
        pthread_exit(nil)
    }
}

extension MappingSource {
    var isAnonymous: Bool {
        if case .anonymous = self { return true }
        return false
    }
}
