import CDmirror
#if canImport(Glibc)
import Glibc
#endif

/// /dev/hmm_dmirrorN opened on the running kernel (the real test_hmm driver).
public final class KernelDmirrorFile: DmirrorFile {
    public let unit: Int
    /// The file descriptor (also what mmap(2) of the device file takes).
    public let fd: Int32

    /// The device node for minor `unit`.
    public static func path(unit: Int) -> String { "/dev/hmm_dmirror\(unit)" }

    /// open("/dev/hmm_dmirrorN", O_RDWR). The driver registers an mmu notifier
    /// on the opener's mm, so the file acts on this process's address space.
    public init(unit: Int) throws(Errno) {
        let fd = dmirror_shim_open(KernelDmirrorFile.path(unit: unit), O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else { throw Errno(-fd) }
        self.unit = unit
        self.fd = fd
    }

    public func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> {
        let ret = dmirror_shim_ioctl_cmd(fd, request, &cmd)
        return ret == 0 ? .success(()) : .failure(Errno(-ret))
    }

    public func close() throws(Errno) {
        guard Glibc.close(fd) == 0 else { throw Errno.current }
    }
}

/// What the running kernel offers: its release, the ABI it speaks and whether test_hmm is loaded.
public struct KernelDriverProbe: Sendable {
    public let release: String
    public let abi: ABIGeneration?
    /// nil when /dev/hmm_dmirror0 opened; otherwise why it did not.
    public let openError: Errno?

    public var isAvailable: Bool { openError == nil }

    /// Reads uname(2) and tries to open /dev/hmm_dmirror0.
    public static func probe() -> KernelDriverProbe {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        var error: Errno?
        do {
            let file = try KernelDmirrorFile(unit: 0)
            try? file.close()
        } catch let failure {
            error = failure
        }
        return KernelDriverProbe(release: release, abi: ABIGeneration(kernelRelease: release), openError: error)
    }

    /// One line saying what is wrong and what to do; nil when the driver is usable.
    public var problem: String? {
        guard let openError else { return nil }
        let node = KernelDmirrorFile.path(unit: 0)
        switch openError {
        case .ENOENT, .ENXIO, .ENODEV:
            return "\(node) is missing: load the test_hmm module (modprobe test_hmm; the kernel needs CONFIG_TEST_HMM=m), or use --backend sim"
        case .EACCES, .EPERM:
            return "\(node): permission denied: run as root (the test_hmm driver is root-only), or use --backend sim"
        default:
            return "\(node) could not be opened: \(openError); check that test_hmm is loaded (modprobe test_hmm), or use --backend sim"
        }
    }
}
