import CDmirror
import DmirrorDevice
#if canImport(Glibc)
import Glibc
#endif

/// A regular file descriptor (the suite's O_TMPFILE).
final class LinuxFile: MachineFile {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func pwrite(_ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int {
        let n = Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
        guard n >= 0 else { throw Errno.current }
        return n
    }

    func pread(into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int {
        let n = Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
        guard n >= 0 else { throw Errno.current }
        return n
    }

    func close() throws(Errno) {
        guard Glibc.close(fd) == 0 else { throw Errno.current }
    }
}

/// /sys/kernel/debug/gup_test.
final class LinuxGupTest: GupTestFile {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func run(_ operation: GupTestOperation, address: UInt64, size: Int, flags: GupFlags, pagesPerCall: Int) throws(Errno) {
        let ret = dmirror_shim_gup_test(fd, operation.rawValue, address, UInt64(size), flags.rawValue, UInt32(pagesPerCall))
        guard ret == 0 else { throw Errno(-ret) }
    }

    func close() { Glibc.close(fd) }
}

/// A userfaultfd.
final class LinuxUserfault: UserfaultFile {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func registerMissing(_ address: UInt64, length: Int) throws(Errno) {
        let ret = dmirror_shim_uffd_register_missing(fd, address, UInt64(length))
        guard ret == 0 else { throw Errno(-ret) }
    }

    func waitForFault(stop: any EventFile) throws(Errno) -> UInt64? {
        guard let stop = stop as? LinuxEvent else { throw .EBADF }
        var fault = dmirror_uffd_fault()
        let ret = dmirror_shim_uffd_wait(fd, stop.fd, &fault)
        guard ret >= 0 else { throw Errno(-ret) }
        return ret == 0 ? nil : fault.address
    }

    func copy(to address: UInt64, from source: UnsafeRawBufferPointer) throws(Errno) {
        let ret = dmirror_shim_uffd_copy(fd, address, source.baseAddress, UInt64(source.count))
        guard ret == 0 else { throw Errno(-ret) }
    }

    func close() { Glibc.close(fd) }
}

/// An eventfd.
final class LinuxEvent: EventFile {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func signal(_ value: UInt64) throws(Errno) {
        var value = value
        let n = withUnsafeBytes(of: &value) { Glibc.write(fd, $0.baseAddress, 8) }
        guard n == 8 else { throw n < 0 ? Errno.current : .EIO }
    }

    func close() { Glibc.close(fd) }
}

/// A forked child process.
final class LinuxChild: ChildProcess {
    let pid: Int32
    init(pid: Int32) { self.pid = pid }

    func kill(_ signal: Int32) throws(Errno) {
        guard Glibc.kill(pid, signal) == 0 else { throw Errno.current }
    }

    func wait() throws(Errno) -> ExitStatus {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            let error = Errno.current
            guard error == .EINTR else { throw error }
        }
        return ExitStatus(waitStatus: status)
    }
}

extension ExitStatus {
    /// Decodes a waitpid(2) status word (WIFEXITED/WEXITSTATUS/WTERMSIG).
    public init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}

/// Small reads and writes of /proc and /sys files.
enum SysFile {
    static func read(_ path: String) -> String? {
        let fd = dmirror_shim_open(path, O_RDONLY | O_CLOEXEC, 0)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readInteger(_ path: String) -> Int? {
        read(path).flatMap { Int($0.trimmingCharacters(in: " \n")) }
    }

    static func write(_ path: String, _ text: String) -> Bool {
        let fd = dmirror_shim_open(path, O_WRONLY | O_CLOEXEC, 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var text = text
        return text.withUTF8 { Glibc.write(fd, $0.baseAddress, $0.count) } == text.utf8.count
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let skip = Set(set)
        return String(drop { skip.contains($0) }.reversed().drop { skip.contains($0) }.reversed())
    }
}
