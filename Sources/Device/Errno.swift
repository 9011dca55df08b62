#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A POSIX error number, as a system call or a dmirror ioctl reported it.
///
/// Modelled on swift-system's `Errno`: a thin wrapper over the raw C value
/// with the names tests and error messages use.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno`, right after a failed libc call.
    public static var current: Errno { Errno(errno) }

    public static let EPERM = Errno(1)
    public static let ENOENT = Errno(2)
    public static let ESRCH = Errno(3)
    public static let EINTR = Errno(4)
    public static let EIO = Errno(5)
    public static let ENXIO = Errno(6)
    public static let E2BIG = Errno(7)
    public static let EBADF = Errno(9)
    public static let ECHILD = Errno(10)
    public static let EAGAIN = Errno(11)
    public static let ENOMEM = Errno(12)
    public static let EACCES = Errno(13)
    public static let EFAULT = Errno(14)
    public static let EBUSY = Errno(16)
    public static let EEXIST = Errno(17)
    public static let ENODEV = Errno(19)
    public static let EINVAL = Errno(22)
    public static let ENOTTY = Errno(25)
    public static let ENOSPC = Errno(28)
    public static let ERANGE = Errno(34)
    public static let ENOSYS = Errno(38)
    public static let EOPNOTSUPP = Errno(95)

    private static let names: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
        9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT",
        16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 25: "ENOTTY", 28: "ENOSPC",
        34: "ERANGE", 38: "ENOSYS", 95: "EOPNOTSUPP",
    ]

    /// The symbolic name (`EINVAL`), or `errno N` for numbers without one here.
    public var name: String { Errno.names[rawValue] ?? "errno \(rawValue)" }

    public var description: String {
        guard let text = strerror(rawValue) else { return name }
        return "\(name) (\(String(cString: text)))"
    }
}
