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
    /// The forked child this process is, if it is one.
    weak var child: SimChild?
    private let lock = HostLock()
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


    // MARK: mmap

    func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
              source: MappingSource, offset: Int) throws(Errno) -> UInt64 {
        let backing: MapBacking
        switch source {
        case .anonymous: backing = .anonymous
        case .file(let file):
            guard let file = file as? SimFile else { throw .EBADF }
            backing = .file(file.inode)
        case .device(let device):
            guard let dmirror = device.file as? Dmirror else { throw .EBADF }
            backing = .device(dmirror)
        }
        defer { returnToUser() }
        return try mm.sysMmap(address: address, length: length, protection: protection, flags: flags,
                              backing: backing, offset: offset)
    }

    func munmap(_ address: UInt64, length: Int) throws(Errno) {
        defer { returnToUser() }
        try mm.sysMunmap(address, length: length)
    }

    func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        defer { returnToUser() }
        try mm.sysMprotect(address, length: length, protection: protection)
    }

    func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        defer { returnToUser() }
        try mm.sysMadvise(address, length: length, advice: advice)
    }

    func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                newAddress: UInt64?) throws(Errno) -> UInt64 {
        defer { returnToUser() }
        return try mm.sysMremap(address, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: newAddress)
    }

    // MARK: CPU access

    func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        defer { returnToUser() }
        if let signal = mm.userAccess(address, buffer.count, write: false, { offset, page, n in
            (base + offset).copyMemory(from: page, byteCount: n)
        }) {
            fatalSignal(signal)
        }
    }

    func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        defer { returnToUser() }
        if let signal = mm.userAccess(address, buffer.count, write: true, { offset, page, n in
            page.copyMemory(from: base + offset, byteCount: n)
        }) {
            fatalSignal(signal)
        }
    }

    /// Back to user space after a system call or an access: the scheduler counts it as
    /// progress, and a pending kill of a child is delivered.
    func returnToUser() {
        kernel.scheduler.progress()
        child?.deliverPendingSignal()
    }

    /// The kernel answers the access with a fatal signal.
    private func fatalSignal(_ signal: Signal) -> Never {
        if let child { child.terminate(by: signal) }
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
        // open(2) returns to user space: a SIGKILL that came during it ends the child here,
        // with the file open and its notifier registered.
        returnToUser()
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

    func eventfd() throws(Errno) -> any EventFile { SimEventFile(kernel.scheduler) }

    // MARK: Threads and time

    func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread {
        try SimThread(kernel.scheduler, body)
    }

    func sleep(nanoseconds: UInt64) { kernel.scheduler.sleep(nanoseconds: nanoseconds) }

    func random() -> UInt32 { kernel.random() }

    func pageWalkCount() -> Int? { kernel.pageWalks }

    // MARK: Processes

    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        mm.mmapLock.writeLock()
        let childMM = mm.dupMmap()
        mm.mmapLock.writeUnlock()
        let process = kernel.makeProcess(mm: childMM, isChild: true)
        return try SimChild.start(process, child)
    }

    /// exit_mm() has run: the task has no mm any more, so find_lock_task_mm() finds
    /// nothing (process_mrelease() says ESRCH). Set before anything of the exit can
    /// be preempted: the kernel's exit_mm() comes first in do_exit().
    private(set) var mmDetached = false

    /// do_exit(): exit_mm() detaches the mm and puts it (the last user runs exit_mmap()),
    /// then exit_files() releases the files: a mirror's release unregisters its interval
    /// notifier from an mm that is already torn down but still allocated, as the notifier's
    /// mmgrab() keeps it in the kernel.
    func exit() {
        mmDetached = true
        mm.mmput()
        let files = lock.withLock { openMirrors }
        for f in files { try? f.close() }
    }
}

extension MappingSource {
    var isAnonymous: Bool {
        if case .anonymous = self { return true }
        return false
    }
}
