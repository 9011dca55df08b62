import ABI
import MachineInterface
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// /dev/hmm_dmirrorN opened on the running kernel (the real test_hmm driver).
public final class KernelDmirrorFile: DmirrorFile {
    public let unit: Int
    /// The file descriptor (also what mmap(2) of the device file takes).
    public let fd: FileDescriptor

    /// The device node for minor `unit`.
    public static func path(unit: Int) -> String { "/dev/hmm_dmirror\(unit)" }

    /// open("/dev/hmm_dmirrorN", O_RDWR). The driver registers an mmu notifier
    /// on the opener's mm, so the file acts on this process's address space.
    public init(unit: Int) throws(Errno) {
        self.unit = unit
        self.fd = try Sys.open(KernelDmirrorFile.path(unit: unit), O_RDWR)
    }

    public func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> {
        // The kernel copies the struct back only on success; a failed call leaves `cmd` as it was.
        var copy = cmd
        do {
            _ = try withUnsafeMutableBytes(of: &copy) { (raw) throws(Errno) in
                try Sys.ioctl(fd, request, raw.baseAddress!)
            }
            cmd = copy
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    public func close() throws(Errno) { try Sys.close(fd) }
}
