import ABI
import MachineInterface

/// A `DmirrorFile` that forwards every call and appends one trace line per ioctl.
public final class TracingDmirrorFile: DmirrorFile {
    /// The file that does the work (the kernel's, or the simulator's).
    public let base: any DmirrorFile
    public let abi: ABIGeneration
    public let trace: CommandTrace
    let pageSize: Int
    /// The logical process that opened the file (used unless the calling thread runs a forked child).
    let opener: Int

    /// The machine's page-walk count (nil: not counted, and the trace says nothing of walks).
    let walks: @Sendable () -> Int?

    init(base: any DmirrorFile, abi: ABIGeneration, pageSize: Int, trace: CommandTrace, opener: Int,
         walks: @escaping @Sendable () -> Int? = { nil }) {
        self.walks = walks
        self.base = base
        self.abi = abi
        self.pageSize = pageSize
        self.trace = trace
        self.opener = opener
    }

    public var unit: Int { base.unit }

    var process: Int { CommandTrace.currentProcess ?? opener }

    public func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> {
        let npages = cmd.npages
        let addr = cmd.addr
        let before = walks()
        let result = base.ioctl(request: request, &cmd)
        var text = line(request: request, addr: addr, npages: npages, result: result, cmd: cmd)
        if let before, let after = walks() { text += " walks=\(after - before)" }
        trace.append(text)
        return result
    }

    public func close() throws(Errno) {
        do {
            try base.close()
            trace.append("\(process) close unit=\(unit) ok")
        } catch {
            trace.append("\(process) close unit=\(unit) errno=\(TraceFormat.errno(error))")
            throw error
        }
    }

    func line(request: UInt, addr: UInt64, npages: UInt64, result: Result<Void, Errno>, cmd: DmirrorCmd) -> String {
        let command = abi.command(forRequest: request)
        var text = "\(process) "
        text += command?.kernelName ?? "ioctl(0x\(String(request, radix: 16)))"
        text += " unit=\(unit) "
        text += command == .flags ? "flags=0x\(String(npages, radix: 16))" : "npages=\(npages)"
        text += addr % UInt64(pageSize) == 0 ? " addr=aligned" : " addr=unaligned"
        switch result {
        case .failure(let error):
            text += " errno=" + TraceFormat.errno(error)
        case .success:
            text += " ok cpages=\(cmd.cpages) faults=\(cmd.faults)"
            guard let command, let pointer = UnsafeRawPointer(bitPattern: UInt(cmd.ptr)) else { break }
            switch command {
            case .snapshot:
                let count = Int(min(cmd.cpages, npages))
                text += " snapshot=" + TraceFormat.runLength(UnsafeRawBufferPointer(start: pointer, count: count))
            case .read, .readUnlocked, .migrateToDevice, .exclusive:
                let count = Int(min(cmd.cpages, npages)) * pageSize
                text += " data=" + trace.digest.field(UnsafeRawBufferPointer(start: pointer, count: count))
            default:
                break
            }
        }
        return text
    }
}


/// A `Machine` whose device files record to a `CommandTrace`; every other call forwards.
///
/// Forked children's machines are wrapped too (as the next logical process),
/// so a child's device commands land in the same trace.
public final class TracingMachine: Machine {
    public let base: any Machine
    public let trace: CommandTrace
    /// This machine's logical process index (0: the case process).
    public let process: Int

    public init(base: any Machine, trace: CommandTrace, process: Int = 0) {
        self.base = base
        self.trace = trace
        self.process = process
    }

    public var pageSize: Int { base.pageSize }
    public var pmdPageSize: Int { base.pmdPageSize }
    public var defaultHugePageSize: Int { base.defaultHugePageSize }
    public func freeHugePages() -> Int { base.freeHugePages() }
    @discardableResult public func reserveHugePages(_ count: Int) -> Bool { base.reserveHugePages(count) }

    public func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
                     source: MappingSource, offset: Int) throws(Errno) -> UInt64 {
        var source = source
        if case .device(let device) = source, let traced = device.file as? TracingDmirrorFile {
            // The base machine recognises only its own files.
            source = .device(MirrorDevice(file: traced.base, abi: device.abi))
        }
        return try base.mmap(address: address, length: length, protection: protection, flags: flags,
                             source: source, offset: offset)
    }

    public func munmap(_ address: UInt64, length: Int) throws(Errno) { try base.munmap(address, length: length) }
    public func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        try base.mprotect(address, length: length, protection: protection)
    }
    public func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        try base.madvise(address, length: length, advice: advice)
    }
    public func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                       newAddress: UInt64?) throws(Errno) -> UInt64 {
        try base.mremap(address, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: newAddress)
    }

    public func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) { base.load(address, into: buffer) }
    public func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) { base.store(address, from: buffer) }
    public func directMemory(_ address: UInt64) -> UnsafeMutableRawPointer? { base.directMemory(address) }

    public func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile {
        try base.createTemporaryFile(size: size)
    }

    public func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        let who = CommandTrace.currentProcess ?? process
        let device: MirrorDevice
        do {
            device = try base.openMirror(unit: unit)
        } catch {
            trace.append("\(who) open unit=\(unit) errno=\(TraceFormat.errno(error))")
            throw error
        }
        trace.append("\(who) open unit=\(unit) ok")
        let machine = base
        let file = TracingDmirrorFile(base: device.file, abi: device.abi, pageSize: base.pageSize,
                                      trace: trace, opener: who, walks: { machine.pageWalkCount() })
        return MirrorDevice(file: file, abi: device.abi)
    }

    public func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 { try base.pagemapEntry(address) }
    public func openGupTest() throws(Errno) -> any GupTestFile { try base.openGupTest() }
    public func userfaultfd() throws(Errno) -> any UserfaultFile { try base.userfaultfd() }
    public func eventfd() throws(Errno) -> any EventFile { try base.eventfd() }

    public func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread {
        try base.startThread(body)
    }
    public func sleep(nanoseconds: UInt64) { base.sleep(nanoseconds: nanoseconds) }
    public func random() -> UInt32 { base.random() }
    public func pageWalkCount() -> Int? { base.pageWalkCount() }

    public func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        let index = trace.nextChildIndex()
        let trace = self.trace
        return try base.fork { childBase in
            try CommandTrace.running(as: index) {
                try child(TracingMachine(base: childBase, trace: trace, process: index))
            }
        }
    }
}
