import ABI
import MachineInterface

// fs/userfaultfd.c (handle_userfault, the file) and mm/userfaultfd.c (UFFDIO_COPY).

/// struct userfaultfd_ctx: pending fault messages, and the wait queues of the
/// faulting tasks (fault_wqh) and of the handler reading the file (fd_wqh).
///
/// `@unchecked Sendable`: only the running task touches it.
final class UserfaultContext: @unchecked Sendable {
    let faults: WaitQueue
    let readers: WaitQueue
    var messages: [UInt64] = []
    var released = false

    init(_ scheduler: Scheduler) {
        faults = WaitQueue(scheduler, "userfaultfd fault_wqh")
        readers = WaitQueue(scheduler, "userfaultfd fd_wqh")
    }
}

extension MMStruct {
    /// handle_userfault(): a missing page in a MISSING-registered range. Without
    /// FAULT_FLAG_ALLOW_RETRY (plain hmm_range_fault) the kernel answers
    /// VM_FAULT_SIGBUS; otherwise it queues a message, drops mmap_lock and
    /// sleeps until the handler resolved the page, then VM_FAULT_RETRY.
    func handleUserfault(_ ctx: UserfaultContext, _ address: UInt64, _ flags: FaultFlags,
                         _ site: StaticString = #function) -> VMFault {
        guard flags.contains(.allowRetry) else { return .sigbus }
        if ctx.released { return .sigbus }
        ctx.messages.append(address)
        ctx.readers.wakeAll()
        mmapLock.readUnlock()
        kernel.scheduler.wait(on: [ctx.faults], site, reason: "userfaultfd: the handler to resolve 0x\(String(address, radix: 16))") {
            ctx.released || ptl.withLock { () -> Bool in
                guard let pmd = pageTable.pmd(address) else { return false }
                if case .table = pmd { return !pageTable.pte(address).isNone }
                return true
            }
        }
        return .retry
    }
}

/// An eventfd: a counter, and who polls it.
final class SimEventFile: EventFile, @unchecked Sendable {
    private var counter: UInt64 = 0
    /// The tasks polling it (a uffd handler waits on both).
    let pollers: WaitQueue

    init(_ scheduler: Scheduler) { pollers = WaitQueue(scheduler, "eventfd") }

    func signal(_ value: UInt64) throws(Errno) {
        counter &+= value
        pollers.wakeAll()
    }

    var isSignalled: Bool { counter > 0 }
    func close() {}
}

/// A userfaultfd registered in MISSING mode.
final class SimUserfaultFile: UserfaultFile, @unchecked Sendable {
    let ctx: UserfaultContext
    unowned let process: SimProcess

    init(process: SimProcess) {
        self.process = process
        ctx = UserfaultContext(process.kernel.scheduler)
    }

    var mm: MMStruct { process.mm }

    func registerMissing(_ address: UInt64, length: Int) throws(Errno) {
        let pageMask = UInt64(mm.pageSize - 1)
        guard address & pageMask == 0, length > 0 else { throw .EINVAL }
        let end = address + ((UInt64(length) + pageMask) & ~pageMask)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        guard mm.isFullyMapped(address, end) else { throw .EINVAL }
        for vma in try mm.isolate(address, end) {
            guard vma.isAnonymous || vma.isShared else { throw .EINVAL }
            vma.userfaultfd = ctx
            vma.flags.insert(.uffdMissing)
        }
    }

    /// poll() on the uffd and `stop`, then read(2) of one message.
    func waitForFault(stop: any EventFile) throws(Errno) -> UInt64? {
        guard let stopEvent = stop as? SimEventFile else { throw .EBADF }
        process.kernel.scheduler.wait(on: [ctx.readers, stopEvent.pollers], #function, reason: "poll(uffd, eventfd)") {
            !ctx.messages.isEmpty || stopEvent.isSignalled || ctx.released
        }
        if !ctx.messages.isEmpty { return ctx.messages.removeFirst() }
        return nil
    }

    /// UFFDIO_COPY: fill the missing page and wake the faulting thread.
    func copy(to address: UInt64, from source: UnsafeRawBufferPointer) throws(Errno) {
        let pageSize = mm.pageSize
        let pageMask = UInt64(pageSize - 1)
        guard address & pageMask == 0, source.count >= pageSize else { throw .EINVAL }
        mm.mmapLock.readLock()
        defer {
            mm.mmapLock.readUnlock()
            ctx.faults.wakeAll()
        }
        guard let vma = mm.vmaLookup(address), vma.userfaultfd === ctx else { throw .ENOENT }
        let folio = mm.kernel.allocFolio(.anon, order: 0, zeroed: false)
        folio.address(page: 0, pageSize: pageSize).copyMemory(from: source.baseAddress!, byteCount: pageSize)
        let installed = mm.ptl.withLock { () -> Bool in
            guard mm.pageTable.pmd(address) == nil || mm.pageTable.pteTable(address) != nil,
                  mm.pageTable.pte(address).isNone else { return false }
            mm.pageTable.setPTE(address, .present(PageRef(folio, 0), writable: vma.flags.contains(.write)))
            return true
        }
        if !installed { throw .EEXIST }
    }

    func close() {
        ctx.released = true
        ctx.faults.wakeAll()
        ctx.readers.wakeAll()
    }
}
