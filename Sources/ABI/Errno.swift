@_exported import struct SystemPackage.Errno
import CDmirror

/// POSIX error numbers are swift-system's `Errno` (values and descriptions
/// from the C headers). These are the kernel's own spellings of the ones
/// the driver, the mm and the suite speak, so the simulator can read
/// `return .EINVAL` where lib/test_hmm.c reads `return -EINVAL`.
extension Errno {
    /// EPERM.
    public static let EPERM = Errno.notPermitted
    /// ENOENT.
    public static let ENOENT = Errno.noSuchFileOrDirectory
    /// ESRCH.
    public static let ESRCH = Errno.noSuchProcess
    /// EINTR.
    public static let EINTR = Errno.interrupted
    /// EIO.
    public static let EIO = Errno.ioError
    /// ENXIO.
    public static let ENXIO = Errno.noSuchAddressOrDevice
    /// EBADF.
    public static let EBADF = Errno.badFileDescriptor
    /// ECHILD.
    public static let ECHILD = Errno.noChildProcess
    /// EAGAIN.
    public static let EAGAIN = Errno.resourceTemporarilyUnavailable
    /// ENOMEM.
    public static let ENOMEM = Errno.noMemory
    /// EACCES.
    public static let EACCES = Errno.permissionDenied
    /// EFAULT.
    public static let EFAULT = Errno.badAddress
    /// EBUSY.
    public static let EBUSY = Errno.resourceBusy
    /// EEXIST.
    public static let EEXIST = Errno.fileExists
    /// ENODEV.
    public static let ENODEV = Errno.operationNotSupportedByDevice
    /// ENOTDIR.
    public static let ENOTDIR = Errno.notDirectory
    /// EISDIR.
    public static let EISDIR = Errno.isDirectory
    /// EINVAL.
    public static let EINVAL = Errno.invalidArgument
    /// EMFILE.
    public static let EMFILE = Errno.tooManyOpenFiles
    /// ENOTTY: the ioctl is not the file's (a node that is not test_hmm's).
    public static let ENOTTY = Errno.inappropriateIOCTLForDevice
    /// ENOSPC.
    public static let ENOSPC = Errno.noSpace
    /// EPIPE.
    public static let EPIPE = Errno.brokenPipe
    /// ERANGE.
    public static let ERANGE = Errno.outOfRange
    /// ENOSYS.
    public static let ENOSYS = Errno.noFunction
    /// EOPNOTSUPP (ENOTSUP on Linux).
    public static let EOPNOTSUPP = Errno.notSupportedOnSocket

    /// The symbolic name, as the C library spells it (`EINVAL`), from strerrorname_np(3);
    /// `errno N` for a number without one.
    public var name: String {
        guard let name = dmirror_errno_name(rawValue) else { return "errno \(rawValue)" }
        return String(cString: name)
    }

    /// `EINVAL (Invalid argument)`: the name first, so an error line can be grepped.
    public var named: String { "\(name) (\(description))" }
}
