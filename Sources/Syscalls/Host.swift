import ABI
import CDmirror
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// uname(2)'s release, e.g. "7.3.4-amd64".
    public static func kernelRelease() -> String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// sysconf(_SC_PAGESIZE).
    public static var pageSize: Int { sysconf(Int32(_SC_PAGESIZE)) }

    /// sysconf(_SC_NPROCESSORS_ONLN).
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// geteuid(2) == 0.
    public static var isRoot: Bool { geteuid() == 0 }

    /// nanosleep(2); an interrupted sleep goes on for what is left.
    public static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// getrandom(2) of 32 bits.
    public static func random() -> UInt32 {
        var value: UInt32 = 0
        while withUnsafeMutableBytes(of: &value, { dmirror_sys_getrandom($0.baseAddress, 4) }) != 4 {}
        return value
    }

    /// vsnprintf(3): C's formatting, so a ported printf line prints what the C one prints.
    public static func format(_ format: String, _ arguments: [CVarArg]) -> String {
        withVaList(arguments) { list in
            var bytes = [CChar](repeating: 0, count: 512)
            _ = vsnprintf(&bytes, bytes.count, format, list)
            return bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }

    /// getrusage(2)'s ru_minflt: this process's minor page faults so far.
    public static func minorFaults() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }

    /// VmHWM of /proc/self/status: the peak resident set, in bytes.
    public static func peakResidentBytes() -> Int? { statusBytes("VmHWM") }

    /// VmRSS of /proc/self/status: the resident set now, in bytes.
    public static func residentBytes() -> Int? { statusBytes("VmRSS") }

    /// A "kB" field of /proc/self/status, in bytes.
    static func statusBytes(_ field: String) -> Int? {
        guard let fd = try? open("/proc/self/status", O_RDONLY) else { return nil }
        defer { try? close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = (try? bytes.withUnsafeMutableBytes { try read(fd, into: $0) }) ?? 0
        let text = String(decoding: bytes[0..<n], as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
              let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
            return nil
        }
        return kilobytes * 1024
    }

    /// Resets the peak resident set to the current one (5 > /proc/self/clear_refs, Linux 4.0).
    public static func resetPeakResident() {
        guard let fd = try? open("/proc/self/clear_refs", O_WRONLY) else { return }
        defer { try? close(fd) }
        try? writeAll(fd, "5\n")
    }

    /// mallopt(3): a case process keeps freed memory instead of handing it back to the host
    /// and faulting it in again (it allocates and frees megabyte buffers over and over).
    public static func keepFreedMemory() {
        _ = dmirror_sys_mallopt(dmirror_M_MMAP_THRESHOLD, 1 << 30)
        _ = dmirror_sys_mallopt(dmirror_M_TRIM_THRESHOLD, 1 << 30)
        _ = dmirror_sys_mallopt(dmirror_M_TOP_PAD, 64 << 20)
    }
}

extension Sys {
    /// setvbuf(stdout, NULL, _IOLBF, 0) on C's `stdout` (the FILE Swift's print writes to).
    public static func lineBufferStandardOutput() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "stdout") else { return }
        let file = symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee
        setvbuf(file, nil, _IOLBF, 0)
    }
}

/// A POSIX thread (pthread_create/pthread_join).
public final class HostThread: @unchecked Sendable {
    private var thread: pthread_t
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// pthread_create(3).
    public init(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        if let forced = mocked("pthread_create", []) { throw forced }
        let box = Unmanaged.passRetained(Box(body))
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw Errno(rawValue: rc)
        }
        thread = handle
    }

    /// pthread_join(3).
    public func join() {
        pthread_join(thread, nil)
    }
}

/// A per-thread integer (pthread_getspecific/setspecific), nil until set.
public final class ThreadLocal: Sendable {
    private let key: pthread_key_t

    public init() {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
    }

    public var value: Int? {
        get { pthread_getspecific(key).map { Int(bitPattern: $0) } }
        set { pthread_setspecific(key, newValue.flatMap { UnsafeRawPointer(bitPattern: $0) }) }
    }
}
