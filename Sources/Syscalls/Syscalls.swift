import ABI
import CDmirror
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The one place dmirror calls the C library for a system call: one thin
/// function per call (the shape of swift-system's Internals/Syscalls.swift),
/// errors as typed `Errno`, EINTR retried here and nowhere else (each
/// function says whether it retries), and every call visible to a
/// `SyscallRecorder` in tests. No policy lives here.
public enum Sys {
    /// Runs a call that returns -1 and sets errno on failure. A forced errno (a
    /// recorder's) stands for the call's own failure, so EINTR is retried alike.
    @inline(__always)
    static func call<I: FixedWidthInteger>(_ name: String, _ arguments: @autoclosure () -> [String],
                                           retryOnInterrupt: Bool = true, _ body: () -> I) throws(Errno) -> I {
        try retrying(name, arguments(), retryOnInterrupt) {
            let result = body()
            return result != -1 ? .success(result) : .failure(Errno(rawValue: errno))
        }
    }

    /// Runs a shim call that returns -errno on failure.
    @inline(__always)
    static func shim<I: FixedWidthInteger & SignedInteger>(_ name: String, _ arguments: @autoclosure () -> [String],
                                                           retryOnInterrupt: Bool = true, _ body: () -> I) throws(Errno) -> I {
        try retrying(name, arguments(), retryOnInterrupt) {
            let result = body()
            return result >= 0 ? .success(result) : .failure(Errno(rawValue: Int32(truncatingIfNeeded: -result)))
        }
    }

    /// The one EINTR loop: the call again while it is interrupted and `retry` says so.
    @inline(__always)
    private static func retrying<T>(_ name: String, _ arguments: @autoclosure () -> [String], _ retry: Bool,
                                    _ body: () -> Result<T, Errno>) throws(Errno) -> T {
        while true {
            let error: Errno
            if let forced = mocked(name, arguments()) {
                error = forced
            } else {
                switch body() {
                case .success(let value): return value
                case .failure(let failed): error = failed
                }
            }
            if retry && error == .EINTR { continue }
            throw error
        }
    }

    // MARK: Files

    /// open(2). Retries on EINTR (a FIFO's open can be interrupted).
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        let fd = try call("open", [path, String(flags, radix: 8), String(mode, radix: 8)]) {
            Glibc.open(path, flags | O_CLOEXEC, mode)
        }
        return FileDescriptor(rawValue: fd)
    }

    /// close(2). Never retried: Linux releases the descriptor even when close reports EINTR.
    public static func close(_ fd: FileDescriptor) throws(Errno) {
        _ = try call("close", [String(fd.rawValue)], retryOnInterrupt: false) { Glibc.close(fd.rawValue) }
    }

    /// read(2) into `buffer`; 0 at end of file. Retries on EINTR.
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try call("read", [String(fd.rawValue), String(buffer.count)]) { Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }
    }

    /// write(2) of `buffer`; the bytes written. Retries on EINTR.
    public static func write(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try call("write", [String(fd.rawValue), String(buffer.count)]) { Glibc.write(fd.rawValue, buffer.baseAddress, buffer.count) }
    }

    /// write(2) until every byte of `buffer` is written (short writes continue).
    public static func writeAll(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < buffer.count {
            let n = try write(fd, UnsafeRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { throw .EIO }
            done += n
        }
    }

    /// `writeAll` of a string's UTF-8 bytes.
    public static func writeAll(_ fd: FileDescriptor, _ text: String) throws(Errno) {
        var text = text
        var failure: Errno?
        text.withUTF8 { bytes in
            do throws(Errno) { try writeAll(fd, UnsafeRawBufferPointer(bytes)) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// pread(2). Retries on EINTR.
    public static func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int {
        try call("pread", [String(fd.rawValue), String(buffer.count), String(offset)]) {
            Glibc.pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset))
        }
    }

    /// pwrite(2). Retries on EINTR.
    public static func pwrite(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int {
        try call("pwrite", [String(fd.rawValue), String(buffer.count), String(offset)]) {
            Glibc.pwrite(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset))
        }
    }

    /// ftruncate(2). Retries on EINTR.
    public static func ftruncate(_ fd: FileDescriptor, _ size: Int) throws(Errno) {
        _ = try call("ftruncate", [String(fd.rawValue), String(size)]) { Glibc.ftruncate(fd.rawValue, off_t(size)) }
    }

    /// fstat(2).
    public static func fstat(_ fd: FileDescriptor) throws(Errno) -> Glibc.stat {
        var info = Glibc.stat()
        _ = try call("fstat", [String(fd.rawValue)]) { Glibc.fstat(fd.rawValue, &info) }
        return info
    }

    /// stat(2) (follows symbolic links).
    public static func stat(_ path: String) throws(Errno) -> Glibc.stat {
        var info = Glibc.stat()
        _ = try call("stat", [path]) { fstatat(AT_FDCWD, path, &info, 0) }
        return info
    }

    /// mkdir(2).
    public static func mkdir(_ path: String, mode: mode_t = 0o755) throws(Errno) {
        _ = try call("mkdir", [path]) { Glibc.mkdir(path, mode) }
    }

    /// unlink(2).
    public static func unlink(_ path: String) throws(Errno) {
        _ = try call("unlink", [path]) { Glibc.unlink(path) }
    }

    /// access(2) with W_OK|X_OK etc.
    public static func access(_ path: String, _ mode: Int32) throws(Errno) {
        _ = try call("access", [path, String(mode)]) { Glibc.access(path, mode) }
    }

    /// readlink(2).
    public static func readlink(_ path: String) throws(Errno) -> String {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let n = try call("readlink", [path]) {
            buffer.withUnsafeMutableBytes { Glibc.readlink(path, $0.baseAddress!, $0.count) }
        }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// opendir(3)/readdir(3)/closedir(3): the names in `path` (without . and ..).
    public static func directoryEntries(_ path: String) throws(Errno) -> [String] {
        if let forced = mocked("opendir", [path]) { throw forced }
        guard let dir = opendir(path) else { throw Errno(rawValue: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// major(3) and minor(3) of a stat's st_rdev.
    public static func deviceNumbers(_ info: Glibc.stat) -> (major: Int, minor: Int) {
        (Int(dmirror_dev_major(info.st_rdev)), Int(dmirror_dev_minor(info.st_rdev)))
    }

    /// isatty(3).
    public static func isTerminal(_ fd: FileDescriptor) -> Bool { isatty(fd.rawValue) == 1 }

    /// fcntl(2) with an integer argument.
    public static func fcntl(_ fd: FileDescriptor, _ command: Int32, _ argument: Int32 = 0) throws(Errno) -> Int32 {
        try call("fcntl", [String(fd.rawValue), String(command), String(argument)]) { Glibc.fcntl(fd.rawValue, command, argument) }
    }

    /// dup2(2).
    public static func dup2(_ fd: FileDescriptor, _ target: Int32) throws(Errno) {
        _ = try call("dup2", [String(fd.rawValue), String(target)]) { Glibc.dup2(fd.rawValue, target) }
    }

    /// pipe(2) with both ends close-on-exec, moved to descriptors above 9 (so a
    /// child's dup2 onto 0...3 never meets them).
    public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try call("pipe", []) { Glibc.pipe(&fds) }
        func high(_ fd: Int32) throws(Errno) -> FileDescriptor {
            defer { Glibc.close(fd) }
            return FileDescriptor(rawValue: try fcntl(FileDescriptor(rawValue: fd), F_DUPFD_CLOEXEC, 10))
        }
        do throws(Errno) {
            let read = try high(fds[0])
            do throws(Errno) { return (read, try high(fds[1])) } catch { Glibc.close(read.rawValue); throw error }
        } catch {
            Glibc.close(fds[1])
            throw error
        }
    }

    /// poll(2). Not retried: the caller owns the deadline; an interrupted poll returns 0 ready.
    public static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(Errno) -> Int {
        let count = fds.count
        do {
            return Int(try call("poll", [String(count), String(timeoutMilliseconds)], retryOnInterrupt: false) {
                Glibc.poll(&fds, nfds_t(count), timeoutMilliseconds)
            })
        } catch .EINTR {
            return 0
        }
    }
}
