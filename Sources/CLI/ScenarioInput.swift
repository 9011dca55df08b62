import ABI
import Harness
import Scenario
import Syscalls
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads scenario files in bounded memory: 64 KiB at a time, one line at a
/// time into the parser; a line longer than `ScenarioLimits.lineBytes` is
/// refused as soon as it is seen, never held whole. Only regular files (and
/// `-`, standard input, whatever it is) are read: a FIFO or a device could
/// block or never end.
enum ScenarioInput {
    /// The name messages use for `path`.
    static func displayName(_ path: String) -> String { path == "-" ? "<stdin>" : path }

    /// Parses `path` (or standard input for `-`).
    static func load(_ path: String) throws(ScenarioError) -> Scenario {
        let name = displayName(path)
        func fail(_ message: String) -> ScenarioError {
            ScenarioError(file: name, line: 1, column: 1, message: message)
        }
        if path == "-" {
            return try parse(name: name, read: { (buffer) throws(Errno) in try Sys.read(.standardInput, into: buffer) },
                             wait: { Self.waitReadable(0) })
        }
        let info: stat
        do {
            info = try Sys.stat(path)
        } catch {
            throw fail("cannot open: \(error.named)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw fail("not a regular file (\(kind(info.st_mode))); a scenario is a text file or - for standard input")
        }
        let fd = try { () throws(ScenarioError) in
            do throws(Errno) {
                // O_NONBLOCK: a FIFO swapped in after the stat check must not block the open.
                return try Sys.open(path, O_RDONLY | O_NONBLOCK)
            } catch {
                throw fail("cannot open: \(error.named)")
            }
        }()
        defer { try? Sys.close(fd) }
        return try parse(name: name, read: { (buffer) throws(Errno) in try Sys.read(fd, into: buffer) },
                         wait: { Self.waitReadable(fd.rawValue) })
    }

    /// Blocks until descriptor `fd` is readable (standard input may be non-blocking).
    static func waitReadable(_ fd: Int32) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        _ = try? Sys.poll(&fds, timeoutMilliseconds: -1)
    }

    /// Feeds what `read` returns to the parser, line by line; `wait` when it says EAGAIN.
    static func parse(name: String, read: (UnsafeMutableRawBufferPointer) throws(Errno) -> Int,
                      wait: () -> Void) throws(ScenarioError) -> Scenario {
        var parser = ScenarioParser(file: name)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { chunk.deallocate() }
        var line: [UInt8] = []
        line.reserveCapacity(ScenarioLimits.lineBytes + 1)
        while true {
            let n: Int
            do {
                n = try read(chunk)
            } catch .EAGAIN {
                wait()
                continue
            } catch {
                throw ScenarioError(file: name, line: parserLine(parser) + 1, column: 1, message: "cannot read: \(error.named)")
            }
            if n == 0 { break }
            var start = 0
            let bytes = UnsafeRawBufferPointer(rebasing: chunk[0..<n])
            while start < n {
                if let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    guard line.count + (newline - start) <= ScenarioLimits.lineBytes else { throw parser.tooLong() }
                    line.append(contentsOf: bytes[start..<newline])
                    try parser.feed(line: line[...])
                    line.removeAll(keepingCapacity: true)
                    start = newline + 1
                } else {
                    guard line.count + (n - start) <= ScenarioLimits.lineBytes else { throw parser.tooLong() }
                    line.append(contentsOf: bytes[start..<n])
                    start = n
                }
            }
        }
        if !line.isEmpty { try parser.feed(line: line[...]) }
        return try parser.finish()
    }

    private static func parserLine(_ parser: ScenarioParser) -> Int { parser.linesRead }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "not a regular file"
        }
    }
}

/// Host buffers for the driver's ptr on the real kernel, carved from one MAP_SHARED
/// anonymous region mapped when the run starts, before any scenario maps anything: a
/// buffer can never merge with a scenario's mappings (the region has its own shmem file)
/// nor land in a hole the scenario just made (a fresh mmap per command would: the kernel
/// places it top-down, in the hole an munmap or mremap left, and a SNAPSHOT of that hole
/// would see the buffer). A forked case inherits the region; a case's buffers live only
/// for one command, so cases that run one after another reuse it. A request the region
/// cannot hold gets a mapping of its own, as before.
final class SharedBuffers: ScenarioBuffers, @unchecked Sendable {
    /// Big enough for any command's default buffer (NULL past 1 GiB) and a little more;
    /// untouched pages cost nothing.
    static let regionBytes = (1 << 30) + (256 << 20)
    private let region: UInt64?
    /// Bytes in use from the region's start (buffers are released last-in first-out).
    private let used = Mutex<Int>(0)

    init() {
        region = try? Sys.mmap(address: nil, length: Self.regionBytes, protection: [.read, .write],
                               flags: [.shared, .anonymous], fd: nil, offset: 0)
    }

    func allocate(_ bytes: Int) -> UnsafeMutableRawBufferPointer? {
        let rounded = (bytes + 4095) & ~4095
        if let region, let start = used.withLock({ (used: inout Int) -> Int? in
            guard used + rounded <= Self.regionBytes else { return nil }
            defer { used += rounded }
            return used
        }) {
            let base = UnsafeMutableRawPointer(bitPattern: UInt(region) + UInt(start))!
            base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return UnsafeMutableRawBufferPointer(start: base, count: bytes)
        }
        guard let address = try? Sys.mmap(address: nil, length: bytes, protection: [.read, .write],
                                          flags: [.shared, .anonymous], fd: nil, offset: 0) else { return nil }
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(address)), count: bytes)
    }

    func release(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        let address = UInt64(UInt(bitPattern: base))
        if let region, address >= region, address < region + UInt64(Self.regionBytes) {
            let rounded = (buffer.count + 4095) & ~4095
            used.withLock { used in
                if Int(address - region) + rounded == used { used -= rounded }
            }
            return
        }
        try? Sys.munmap(address, length: buffer.count)
    }
}
