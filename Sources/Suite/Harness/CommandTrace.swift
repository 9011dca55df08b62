import DmirrorDevice
import DmirrorMachine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A case's command trace: one line per dmirror ioctl (plus the device files'
/// open and close, and the case's end), in the order the process issued them.
///
/// The trace says only what both backends must agree on: no raw addresses,
/// no real pids. Two runs of a deterministic case, one on the real kernel and
/// one on the simulator, must produce the same lines (`TraceComparison`).
///
/// Line format (fields separated by one space):
///
///     <pid> <COMMAND> unit=<N> npages=<N> addr=aligned|unaligned <outcome>
///     <pid> HMM_DMIRROR_FLAGS unit=<N> flags=0x<hex> addr=... <outcome>
///     <pid> open unit=<N> ok|errno=<NAME>
///     <pid> close unit=<N> ok|errno=<NAME>
///     end pass|fail|assert|skip
///
/// `<pid>` is a logical process index: 0 for the case process, 1 for its
/// first forked child, 2 for the next, and so on. `<COMMAND>` is the uapi
/// name (HMM_DMIRROR_READ, ...) or `ioctl(0x...)` for a request the ABI
/// generation does not know. `<outcome>` is `errno=<NAME>` or
/// `ok cpages=<N> faults=<N>`, followed on success by
/// `data=fnv1a64:<16 hex>` for READ, READ_UNLOCKED, MIGRATE_TO_DEV and
/// EXCLUSIVE (the first cpages pages of the ptr buffer) or
/// `snapshot=<run-length hex>` for SNAPSHOT (e.g. `11x2 01 02 22x1020`).
/// Lines starting with `#` are comments.
///
/// Each line is one write(2) to a file opened with O_APPEND, so nothing is
/// buffered (a crash loses nothing) and a forked child on the real kernel,
/// which inherits the descriptor, appends to the same file.
public final class CommandTrace: Sendable {
    /// The trace file's descriptor.
    public let descriptor: Int32
    private let children = Atomic<Int>(0)

    /// Appends to an already open descriptor (not closed by the trace).
    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The trace file of `caseName` in `directory`: `<directory>/<caseName>.trace`.
    public static func path(directory: String, caseName: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + caseName + TraceComparison.fileExtension
    }

    /// Creates (truncates) the trace file of `caseName` and writes its header.
    public static func create(directory: String, caseName: String) throws(Errno) -> CommandTrace {
        let fd = open(path(directory: directory, caseName: caseName),
                      O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Errno.current }
        let trace = CommandTrace(descriptor: fd)
        trace.append("# dmirror command trace v1: \(caseName)")
        return trace
    }

    /// Appends `line` (one write(2)).
    public func append(_ line: String) {
        FDWrite.all(descriptor, line + "\n")
    }

    /// The closing line: how the case ended.
    public func finish(_ outcome: CaseOutcome) {
        append("end " + Self.word(outcome))
    }

    static func word(_ outcome: CaseOutcome) -> String {
        switch outcome {
        case .passed: "pass"
        case .expectationFailed: "fail"
        case .assertionFailed: "assert"
        case .skipped: "skip"
        }
    }

    /// The logical index for the next forked child (1, 2, ...).
    func nextChildIndex() -> Int {
        children.wrappingAdd(1, ordering: .relaxed).newValue
    }

    // MARK: The process a line is attributed to

    private static let processKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The logical process index the calling thread runs as, if a forked
    /// child's body set one (the kernel's child process, or the simulator's
    /// child thread).
    static var currentProcess: Int? {
        guard let raw = pthread_getspecific(processKey) else { return nil }
        return Int(bitPattern: raw) - 1
    }

    /// Runs `body` with the calling thread attributed to logical process `index`.
    static func running<T>(as index: Int, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(processKey)
        pthread_setspecific(processKey, UnsafeRawPointer(bitPattern: index + 1))
        defer { pthread_setspecific(processKey, previous) }
        return try body()
    }
}

// MARK: Formatting

/// How trace lines spell their fields.
public enum TraceFormat {
    /// `ENOENT`, or the number for an errno without a name here.
    public static func errno(_ error: Errno) -> String {
        let name = error.name
        return name.hasPrefix("E") ? name : String(error.rawValue)
    }

    /// Lower-case hex of `value`, zero-padded to `width` digits.
    public static func hex<T: BinaryInteger>(_ value: T, width: Int) -> String {
        let digits = String(value, radix: 16)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Snapshot bytes as two-digit hex, runs of two or more as `<byte>x<count>`:
    /// [0x11, 0x11, 0x01, 0x02] → `11x2 01 02`. Empty input gives "".
    @_optimize(speed)
    public static func runLength(_ bytes: UnsafeRawBufferPointer) -> String {
        var parts: [String] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            var end = index + 1
            while end < bytes.count && bytes[end] == byte { end += 1 }
            let run = end - index
            parts.append(run > 1 ? "\(hex(byte, width: 2))x\(run)" : hex(byte, width: 2))
            index = end
        }
        return parts.joined(separator: " ")
    }

    public static func runLength(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { runLength($0) }
    }

    /// FNV-1a 64 of `bytes` (byte by byte, in memory order). The loop reads
    /// aligned 64-bit words and folds their bytes with shifts: plain
    /// arithmetic that stays fast in debug builds (no generic iterator per
    /// byte); the suite digests hundreds of MiB per run.
    @_optimize(speed)
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let prime: UInt64 = 0x0000_0100_0000_01b3
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        guard let start = bytes.baseAddress, bytes.count > 0 else { return hash }
        var p = start
        let end = start + bytes.count
        // Leading bytes up to 8-byte alignment, then whole words, then the tail.
        while p < end && UInt(bitPattern: p) & 7 != 0 {
            hash = (hash ^ UInt64(p.load(as: UInt8.self))) &* prime
            p += 1
        }
        let wordEnd = p + (end - p) / 8 * 8
        while p < wordEnd {
            let w = UInt64(littleEndian: p.load(as: UInt64.self))
            hash = (hash ^ (w & 0xff)) &* prime
            hash = (hash ^ ((w >> 8) & 0xff)) &* prime
            hash = (hash ^ ((w >> 16) & 0xff)) &* prime
            hash = (hash ^ ((w >> 24) & 0xff)) &* prime
            hash = (hash ^ ((w >> 32) & 0xff)) &* prime
            hash = (hash ^ ((w >> 40) & 0xff)) &* prime
            hash = (hash ^ ((w >> 48) & 0xff)) &* prime
            hash = (hash ^ (w >> 56)) &* prime
            p += 8
        }
        while p < end {
            hash = (hash ^ UInt64(p.load(as: UInt8.self))) &* prime
            p += 1
        }
        return hash
    }

    /// `fnv1a64:<16 hex digits>`.
    public static func data(_ bytes: UnsafeRawBufferPointer) -> String {
        "fnv1a64:" + hex(digest(bytes), width: 16)
    }
}

// MARK: The recording device file

/// A `DmirrorFile` that forwards every call and appends one trace line per ioctl.
public final class TracingDmirrorFile: DmirrorFile {
    /// The file that does the work (the kernel's, or the simulator's).
    public let base: any DmirrorFile
    public let abi: ABIGeneration
    public let trace: CommandTrace
    let pageSize: Int
    /// The logical process that opened the file (used unless the calling thread runs a forked child).
    let opener: Int

    init(base: any DmirrorFile, abi: ABIGeneration, pageSize: Int, trace: CommandTrace, opener: Int) {
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
        let result = base.ioctl(request: request, &cmd)
        trace.append(line(request: request, addr: addr, npages: npages, result: result, cmd: cmd))
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
                text += " data=" + TraceFormat.data(UnsafeRawBufferPointer(start: pointer, count: count))
            default:
                break
            }
        }
        return text
    }
}

// MARK: The recording machine

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

    public var backend: Backend { base.backend }
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
        let file = TracingDmirrorFile(base: device.file, abi: device.abi, pageSize: base.pageSize,
                                      trace: trace, opener: who)
        return MirrorDevice(file: file, abi: device.abi)
    }

    public func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 { try base.pagemapEntry(address) }
    public func openGupTest() throws(Errno) -> any GupTestFile { try base.openGupTest() }
    public func userfaultfd() throws(Errno) -> any UserfaultFile { try base.userfaultfd() }
    public func eventfd() throws(Errno) -> any EventFile { try base.eventfd() }

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
