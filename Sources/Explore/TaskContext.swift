import ABI
import MachineInterface

/// What a scenario task does, each operation recorded as one line of the
/// outcome. Addresses are pages of the scenario buffer (`p2+2`: two pages
/// from page 2), so the kernel and the simulator give comparable lines.
///
/// `@unchecked Sendable`: each task touches only its own context (and the
/// run's shared parts are written before the tasks start).
public final class TaskContext: @unchecked Sendable {
    public let name: String
    let machine: any Machine
    let run: ScenarioRun
    /// This task's devices by unit (a child that opens its own replaces the inherited one).
    var devices: [Int: MirrorDevice]
    private let log: TaskLog

    init(name: String, machine: any Machine, run: ScenarioRun, devices: [Int: MirrorDevice], log: TaskLog) {
        self.name = name
        self.machine = machine
        self.run = run
        self.devices = devices
        self.log = log
    }

    var pageSize: Int { run.pageSize }

    private func address(_ page: Int) -> UInt64 { run.base + UInt64(page * pageSize) }

    private func record(_ line: String) { log.append(line) }

    private func range(_ page: Int, _ count: Int) -> String { "p\(page)+\(count)" }

    /// The kernel run's jitter before an operation: a short, seeded spin, so that
    /// repetitions meet the other tasks at different points.
    private func jitter() {
        guard var state = run.jitter else { return }
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        run.jitter = state
        var sink: UInt64 = 0
        for i in 0..<(state % 20_000) { sink &+= i }
        run.sinkHole = sink
    }

    // MARK: Setup helpers

    /// Fills every page of the buffer by CPU stores: page i holds the sequence
    /// starting at (i + 1) * 10000 (summarised as `10000+`).
    public func fill(pages: [Int]? = nil) {
        for page in pages ?? Array(0..<run.pages) {
            store(page, (Int32(page) + 1) * 10000, recorded: false)
        }
    }

    // MARK: CPU access

    /// The CPU stores a page: the sequence starting at `first`.
    public func store(_ page: Int, _ first: Int32) { store(page, first, recorded: true) }

    private func store(_ page: Int, _ first: Int32, recorded: Bool) {
        if recorded { jitter() }
        let words = pageSize / 4
        let values = UnsafeMutableBufferPointer<Int32>.allocate(capacity: words)
        defer { values.deallocate() }
        for i in 0..<words { values[i] = first &+ Int32(i) }
        machine.store(address(page), from: UnsafeRawBufferPointer(values))
        if recorded { record("store p\(page) \(first)+") }
    }

    /// The CPU loads pages and records what they hold. (On the kernel, a load of an
    /// unmapped page kills the process: scenarios load only what stays mapped.)
    public func load(_ page: Int, _ count: Int = 1) {
        jitter()
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count * pageSize, alignment: 8)
        defer { bytes.deallocate() }
        machine.load(address(page), into: bytes)
        record("load \(range(page, count)) -> \(PageData.summary(UnsafeRawBufferPointer(bytes), pageSize: pageSize))")
    }

    // MARK: The address space

    public func munmap(_ page: Int, _ count: Int) {
        jitter()
        recordCall("munmap \(range(page, count))") { () throws(Errno) in try machine.munmap(address(page), length: count * pageSize) }
    }

    public func mprotect(_ page: Int, _ count: Int, _ protection: Protection) {
        jitter()
        let name = protection.isEmpty ? "NONE" : [(Protection.read, "READ"), (.write, "WRITE"), (.exec, "EXEC")]
            .filter { protection.contains($0.0) }.map(\.1).joined(separator: "|")
        recordCall("mprotect \(range(page, count)) \(name)") { () throws(Errno) in
            try machine.mprotect(address(page), length: count * pageSize, protection: protection)
        }
    }

    public func dontNeed(_ page: Int, _ count: Int) {
        jitter()
        recordCall("madvise \(range(page, count)) DONTNEED") { () throws(Errno) in
            try machine.madvise(address(page), length: count * pageSize, advice: .dontNeed)
        }
    }

    private func recordCall(_ what: String, _ body: () throws(Errno) -> Void) {
        switch Result(catching: body) {
        case .success: record("\(what) -> ok")
        case .failure(let errno): record("\(what) -> \(errno.name)")
        }
    }

    // MARK: The device

    /// open("/dev/hmm_dmirrorN") in this task's process (a child mirrors its own mm).
    public func openDevice(_ unit: Int) {
        jitter()
        switch Result(catching: { () throws(Errno) in try machine.openMirror(unit: unit) }) {
        case .success(let device):
            devices[unit] = device
            record("open hmm_dmirror\(unit) -> ok")
        case .failure(let errno):
            record("open hmm_dmirror\(unit) -> \(errno.name)")
        }
    }

    /// A dmirror command on `count` pages from `page`; the data it returns (READ,
    /// MIGRATE_TO_DEV, EXCLUSIVE, the proposed MIGRATE_ON_FAULT_TO_DEV) is summarised,
    /// SNAPSHOT's bytes are given in hex.
    public func command(_ command: DmirrorCommand, _ page: Int, _ count: Int, device unit: Int = 0, pattern: Int32 = 0) {
        jitter()
        let what = "\(command.kernelName.dropFirst("HMM_DMIRROR_".count)) \(range(page, count))"
            + (unit == 0 ? "" : " dev\(unit)")
        guard let device = devices[unit] else {
            record("\(what) -> no device")
            return
        }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count * pageSize, 1), alignment: 8)
        defer { bytes.deallocate() }
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        if command == .write {
            let words = bytes.bindMemory(to: Int32.self)
            for i in words.indices { words[i] = pattern &+ Int32(i) }
        }
        do {
            let result = try device.perform(command, addr: address(page), ptr: UInt64(UInt(bitPattern: bytes.baseAddress)),
                                            npages: UInt64(count))
            var line = "\(what) -> ok cpages=\(result.cpages) faults=\(result.faults)"
            switch command {
            case .read, .migrateToDevice, .exclusive, .readUnlocked, .migrateOnFaultToDevice:
                line += " data=" + PageData.summary(UnsafeRawBufferPointer(bytes), pageSize: pageSize)
            case .snapshot:
                line += " snapshot=" + bytes.prefix(Int(result.cpages)).map { PageData.hex($0) }.joined(separator: " ")
            default:
                break
            }
            record(line)
        } catch {
            record("\(what) -> \(error.errno?.name ?? error.description)")
        }
    }

    // MARK: Children

    /// The forked child of the process task `name`, for the parent's threads.
    public func kill(_ task: String) {
        jitter()
        guard let child = run.child(task) else { return record("kill \(task) -> not started") }
        recordCall("kill \(task) SIGKILL") { () throws(Errno) in try child.kill(.kill) }
    }

    /// process_mrelease() of the process task `name`.
    public func releaseMemory(_ task: String) {
        jitter()
        guard let child = run.child(task) else { return record("process_mrelease \(task) -> not started") }
        recordCall("process_mrelease \(task)") { () throws(Errno) in try child.releaseMemory() }
    }
}

/// One task's outcome lines. A forked child's live in a shared mapping, so the
/// parent can read them after the child ended (however it ended).
final class TaskLog: @unchecked Sendable {
    private(set) var lines: [String] = []
    /// The shared page the lines are mirrored into, and the machine that writes it.
    private let shared: (machine: any Machine, address: UInt64, size: Int)?

    init(shared: (machine: any Machine, address: UInt64, size: Int)? = nil) { self.shared = shared }

    /// The same log, mirrored into `machine`'s view of the shared page (the child's).
    func mirrored(by machine: any Machine) -> TaskLog {
        TaskLog(shared: shared.map { (machine, $0.address, $0.size) })
    }

    func append(_ line: String) {
        lines.append(line)
        guard let shared else { return }
        var bytes = Array(lines.joined(separator: "\n").utf8.prefix(shared.size - 4))
        let length = UInt32(bytes.count)
        bytes.insert(contentsOf: withUnsafeBytes(of: length.littleEndian, Array.init), at: 0)
        bytes.withUnsafeBytes { shared.machine.store(shared.address, from: $0) }
    }

    /// The lines a child left in the shared page, read by the parent.
    static func read(_ machine: any Machine, _ address: UInt64, size: Int) -> [String] {
        let bytes = machine.loadBytes(address, count: size)
        let length = Int(UInt32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        guard length > 0, length <= size - 4 else { return [] }
        return String(decoding: bytes[4..<(4 + length)], as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// How outcome lines show page contents.
public enum PageData {
    /// Per page: `0` all zeros, `N+` the sequence N, N+1, ... (what the scenarios
    /// write), `=N` every word N, else a hash of the bytes.
    public static func summary(_ bytes: UnsafeRawBufferPointer, pageSize: Int) -> String {
        let pages = bytes.count / pageSize
        return "[" + (0..<pages).map { page(UnsafeRawBufferPointer(rebasing: bytes[($0 * pageSize)..<(($0 + 1) * pageSize)])) }
            .joined(separator: ",") + "]"
    }

    static func page(_ bytes: UnsafeRawBufferPointer) -> String {
        let words = bytes.bindMemory(to: Int32.self)
        let first = words[0]
        if words.allSatisfy({ $0 == 0 }) { return "0" }
        if words.indices.allSatisfy({ words[$0] == first &+ Int32($0) }) { return "\(first)+" }
        if words.allSatisfy({ $0 == first }) { return "=\(first)" }
        var hash: UInt32 = 2_166_136_261
        for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return "#" + hex32(hash)
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    static func hex32(_ value: UInt32) -> String {
        (0..<4).map { hex(UInt8(truncatingIfNeeded: value >> (24 - 8 * $0))) }.joined()
    }
}
