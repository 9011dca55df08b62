import ABI
import MachineInterface
import Synchronization
import Syscalls
import SystemPackage
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
/// `data=<digest>:<16 hex>` for READ, READ_UNLOCKED, MIGRATE_TO_DEV and
/// EXCLUSIVE (the first cpages pages of the ptr buffer; `TraceDigest`: fnv1a64w in
/// v2 traces, fnv1a64 in v1) or
/// `snapshot=<run-length hex>` for SNAPSHOT (e.g. `11x2 01 02 22x1020`).
/// Lines starting with `#` are comments; the first is the header,
/// `# dmirror command trace v<N>: <case>`.
///
/// Each line is one write(2) to a file opened with O_APPEND, so nothing is
/// buffered (a crash loses nothing) and a forked child on the real kernel,
/// which inherits the descriptor, appends to the same file.
public final class CommandTrace: Sendable {
    /// The trace file's descriptor.
    public let descriptor: FileDescriptor
    /// How data lines digest what a command returned.
    public let digest: TraceDigest
    private let children = Atomic<Int>(0)

    /// Appends to an already open descriptor (not closed by the trace).
    public init(descriptor: FileDescriptor, digest: TraceDigest = .current) {
        self.descriptor = descriptor
        self.digest = digest
    }

    /// The trace file of `caseName` in `directory`: `<directory>/<caseName>.trace`.
    public static func path(directory: String, caseName: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + caseName + TraceComparison.fileExtension
    }

    /// Creates (truncates) the trace file of `caseName` and writes its header.
    public static func create(directory: String, caseName: String, digest: TraceDigest = .current) throws(Errno) -> CommandTrace {
        let fd = try Sys.open(path(directory: directory, caseName: caseName), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
                              mode: 0o644)
        let trace = CommandTrace(descriptor: fd, digest: digest)
        trace.append(header(version: digest.version, caseName: caseName))
        return trace
    }

    static let headerPrefix = "# dmirror command trace v"

    /// `# dmirror command trace v2: <case>`.
    static func header(version: Int, caseName: String) -> String { "\(headerPrefix)\(version): \(caseName)" }

    /// The format version a header line names, nil for any other line.
    static func version(ofHeader line: String) -> Int? {
        guard line.hasPrefix(headerPrefix) else { return nil }
        return Int(line.dropFirst(headerPrefix.count).prefix { $0.isNumber })
    }

    /// Appends `line` (one write(2)).
    public func append(_ line: String) {
        try? Sys.writeAll(descriptor, line + "\n")
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

    private static let processKey = ThreadLocal()

    /// The logical process index the calling thread runs as, if a forked
    /// child's body set one (the kernel's child process, or the simulator's
    /// child thread).
    static var currentProcess: Int? { processKey.value.map { $0 - 1 } }

    /// Runs `body` with the calling thread attributed to logical process `index`.
    static func running<T>(as index: Int, _ body: () throws -> T) rethrows -> T {
        let previous = processKey.value
        processKey.value = index + 1
        defer { processKey.value = previous }
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

    /// FNV-1a 64 of `bytes` (byte by byte, in memory order): v1 traces' digest and the
    /// scenarios' `data=fnv1a64:`. The loop reads
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
    public static func data(_ bytes: UnsafeRawBufferPointer) -> String { TraceDigest.fnv1a64.field(bytes) }
}

