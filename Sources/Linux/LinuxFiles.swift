import ABI
import MachineInterface
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A regular file descriptor (the suite's O_TMPFILE).
final class LinuxFile: MachineFile {
    let fd: FileDescriptor
    init(fd: FileDescriptor) { self.fd = fd }

    func pwrite(_ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int {
        try Sys.pwrite(fd, buffer, offset: offset)
    }

    func pread(into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int {
        try Sys.pread(fd, into: buffer, offset: offset)
    }

    func close() throws(Errno) { try Sys.close(fd) }
}

/// /sys/kernel/debug/gup_test.
final class LinuxGupTest: GupTestFile {
    let fd: FileDescriptor
    /// The running kernel, whose FOLL_* values gup_flags takes.
    let kernel: KernelVersion?
    init(fd: FileDescriptor, kernel: KernelVersion?) {
        self.fd = fd
        self.kernel = kernel
    }

    func run(_ operation: GupTestOperation, address: UInt64, size: Int, flags: GupFlags, pagesPerCall: Int) throws(Errno) {
        try Sys.gupTest(fd, operation, address: address, size: size, flags: flags.kernelValue(on: kernel),
                        pagesPerCall: pagesPerCall)
    }

    func close() { try? Sys.close(fd) }
}

/// A userfaultfd.
final class LinuxUserfault: UserfaultFile {
    let fd: FileDescriptor
    init(fd: FileDescriptor) { self.fd = fd }

    func registerMissing(_ address: UInt64, length: Int) throws(Errno) {
        try Sys.userfaultfdRegisterMissing(fd, address, length: UInt64(length))
    }

    func waitForFault(stop: any EventFile) throws(Errno) -> UInt64? {
        guard let stop = stop as? LinuxEvent else { throw .EBADF }
        while true {
            var fds = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stop.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            guard try Sys.poll(&fds, timeoutMilliseconds: -1) > 0 else { continue }
            if fds[1].revents != 0 { return nil }
            guard fds[0].revents & Int16(POLLIN) != 0 else { throw .EIO }
            // Another reader may have taken the message (EAGAIN: poll again).
            if let address = try Sys.userfaultfdReadFault(fd) { return address }
        }
    }

    func copy(to address: UInt64, from source: UnsafeRawBufferPointer) throws(Errno) {
        try Sys.userfaultfdCopy(fd, to: address, from: source)
    }

    func close() { try? Sys.close(fd) }
}

/// An eventfd.
final class LinuxEvent: EventFile {
    let fd: FileDescriptor
    init(fd: FileDescriptor) { self.fd = fd }

    func signal(_ value: UInt64) throws(Errno) {
        var value = value
        let n = try withUnsafeBytes(of: &value) { (bytes) throws(Errno) in try Sys.write(fd, bytes) }
        guard n == 8 else { throw .EIO }
    }

    func close() { try? Sys.close(fd) }
}

/// A forked child process.
final class LinuxChild: ChildProcess {
    let pid: Int32
    init(pid: Int32) { self.pid = pid }

    func kill(_ signal: Signal) throws(Errno) { try Sys.kill(pid, signal) }

    func wait() throws(Errno) -> ExitStatus { try Sys.wait(pid) }

    func releaseMemory() throws(Errno) {
        let pidfd = try Sys.pidfdOpen(pid)
        defer { try? Sys.close(pidfd) }
        try Sys.processMrelease(pidfd)
    }
}

/// A thread of this process.
final class LinuxThread: MachineThread {
    let thread: HostThread
    init(_ thread: HostThread) { self.thread = thread }
    func join() { thread.join() }
}

/// Small reads and writes of /proc and /sys files, bounded (a file may be anything).
public enum SysFile {
    /// The file's text, at most `limit` bytes of it; nil if it cannot be read.
    public static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        guard let fd = try? Sys.open(path, O_RDONLY | O_NONBLOCK) else { return nil }
        defer { try? Sys.close(fd) }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        while bytes.count < limit {
            guard let n = try? Sys.read(fd, into: chunk), n > 0 else { break }
            bytes += chunk.prefix(min(n, limit - bytes.count))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The file's first line as an integer.
    public static func readInteger(_ path: String) -> Int? {
        read(path, limit: 64).flatMap { text in
            Int(text.split(separator: "\n").first.map { $0.trimmingCharacters(in: " \t") } ?? "")
        }
    }

    /// Writes `text`; whether all of it was written.
    public static func write(_ path: String, _ text: String) -> Bool {
        guard let fd = try? Sys.open(path, O_WRONLY) else { return false }
        defer { try? Sys.close(fd) }
        return (try? Sys.writeAll(fd, text)) != nil
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let skip = Set(set)
        return String(drop { skip.contains($0) }.reversed().drop { skip.contains($0) }.reversed())
    }
}
