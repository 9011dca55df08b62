import ABI
import MachineInterface

/// struct userfaultfd_ctx: pending fault messages and the faulting threads' wait queue.
///
/// `@unchecked Sendable`: all state under `lock`.
final class UserfaultContext: @unchecked Sendable {
    let lock = SimMutex()
    let wakeup = SimCondition()
    var messages: [UInt64] = []
    var released = false
}

extension MMStruct {
    /// handle_userfault(): a missing page in a MISSING-registered range. Without
    /// FAULT_FLAG_ALLOW_RETRY (plain hmm_range_fault) the kernel answers
    /// VM_FAULT_SIGBUS; otherwise it queues a message, drops mmap_lock and
    /// sleeps until the handler resolved the page, then VM_FAULT_RETRY.
    func handleUserfault(_ ctx: UserfaultContext, _ address: UInt64, _ flags: FaultFlags) -> VMFault {
        guard flags.contains(.allowRetry) else { return .sigbus }
        ctx.lock.lock()
        if ctx.released {
            ctx.lock.unlock()
            return .sigbus
        }
        ctx.messages.append(address)
        ctx.wakeup.broadcast()
        ctx.lock.unlock()
        mmapLock.readUnlock()
        ctx.lock.lock()
        while !ctx.released {
            let resolved = ptl.withLock { () -> Bool in
                guard let pmd = pageTable.pmd(address) else { return false }
                if case .table = pmd { return !pageTable.pte(address).isNone }
                return true
            }
            if resolved { break }
            ctx.lock.wait(ctx.wakeup, timeoutNanoseconds: 5_000_000)
        }
        ctx.lock.unlock()
        return .retry
    }
}

/// An eventfd.
final class SimEventFile: EventFile, @unchecked Sendable {
    private let lock = SimMutex()
    private var counter: UInt64 = 0

    func signal(_ value: UInt64) throws(Errno) { lock.withLock { counter &+= value } }
    var isSignalled: Bool { lock.withLock { counter > 0 } }
    func close() {}
}

/// A userfaultfd registered in MISSING mode.
final class SimUserfaultFile: UserfaultFile, @unchecked Sendable {
    let ctx = UserfaultContext()
    unowned let process: SimProcess

    init(process: SimProcess) { self.process = process }

    var mm: MMStruct { process.mm }

    func registerMissing(_ address: UInt64, length: Int) throws(Errno) {
        let pageMask = UInt64(mm.pageSize - 1)
        guard address & pageMask == 0, length > 0 else { throw .EINVAL }
        let end = address + ((UInt64(length) + pageMask) & ~pageMask)
        mm.mmapLock.writeLock()
        defer { mm.mmapLock.writeUnlock() }
        guard mm.isFullyMapped(address, end) else { throw .EINVAL }
        for vma in mm.isolate(address, end) {
            guard vma.isAnonymous || vma.isShared else { throw .EINVAL }
            vma.userfaultfd = ctx
            vma.flags.insert(.uffdMissing)
        }
    }

    func waitForFault(stop: any EventFile) throws(Errno) -> UInt64? {
        let stopEvent = stop as? SimEventFile
        ctx.lock.lock()
        defer { ctx.lock.unlock() }
        while true {
            if !ctx.messages.isEmpty { return ctx.messages.removeFirst() }
            if stopEvent?.isSignalled == true || ctx.released { return nil }
            ctx.lock.wait(ctx.wakeup, timeoutNanoseconds: 2_000_000)
        }
    }

    /// UFFDIO_COPY: fill the missing page and wake the faulting thread.
    func copy(to address: UInt64, from source: UnsafeRawBufferPointer) throws(Errno) {
        let pageSize = mm.pageSize
        let pageMask = UInt64(pageSize - 1)
        guard address & pageMask == 0, source.count >= pageSize else { throw .EINVAL }
        mm.mmapLock.readLock()
        defer {
            mm.mmapLock.readUnlock()
            ctx.lock.withLock { ctx.wakeup.broadcast() }
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
        ctx.lock.withLock {
            ctx.released = true
            ctx.wakeup.broadcast()
        }
    }
}
