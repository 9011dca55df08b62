import ABI
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What the running kernel offers the kernel backend: its release, the ABI it
/// speaks, and whether /dev/hmm_dmirror0 is test_hmm's device and opens.
public struct KernelDriverProbe: Sendable {
    /// Why the kernel backend cannot run.
    public enum Problem: Error, Hashable, Sendable {
        /// No node, and no HMM_DMIRROR major in /proc/devices: test_hmm is not loaded.
        case notLoaded
        /// The driver is registered but the node is missing (no devtmpfs/udev node).
        case nodeMissing(major: Int)
        /// The path is not a character device (a regular file, a directory, a FIFO...).
        case notCharacterDevice(kind: String)
        /// A character device of another driver (e.g. /dev/null mounted over it).
        case otherDriver(major: Int, minor: Int, expected: Int?)
        /// open(2) was refused.
        case permission(Errno)
        /// open(2) failed otherwise.
        case openFailed(Errno)
    }

    public let release: String
    public let abi: ABIGeneration?
    /// nil when /dev/hmm_dmirror0 is test_hmm's and opened read-write.
    public let problem: Problem?

    public var isAvailable: Bool { problem == nil }

    /// The node the probe checks.
    public static let node = KernelDmirrorFile.path(unit: 0)

    /// The major number test_hmm registered ("HMM_DMIRROR" in /proc/devices), if loaded.
    public static func registeredMajor(devices: String? = SysFile.read("/proc/devices")) -> Int? {
        guard let devices else { return nil }
        var inCharacter = false
        for line in devices.split(separator: "\n") {
            if line.hasPrefix("Character devices") { inCharacter = true; continue }
            if line.hasPrefix("Block devices") { inCharacter = false; continue }
            let fields = line.split(separator: " ")
            if inCharacter, fields.count == 2, fields[1] == "HMM_DMIRROR" { return Int(fields[0]) }
        }
        return nil
    }

    /// Reads uname(2), /proc/devices and the node, and tries to open it.
    public static func probe(node: String = KernelDriverProbe.node,
                             devices: String? = SysFile.read("/proc/devices")) -> KernelDriverProbe {
        let release = Sys.kernelRelease()
        return KernelDriverProbe(release: release, abi: ABIGeneration(kernelRelease: release),
                                 problem: check(node: node, major: registeredMajor(devices: devices)))
    }

    static func check(node: String, major expected: Int?) -> Problem? {
        let info: stat
        do {
            info = try Sys.stat(node)
        } catch {
            return expected.map { .nodeMissing(major: $0) } ?? .notLoaded
        }
        guard info.st_mode & S_IFMT == S_IFCHR else { return .notCharacterDevice(kind: fileKind(info.st_mode)) }
        let (major, minor) = Sys.deviceNumbers(info)
        guard let expected, major == expected else { return .otherDriver(major: major, minor: minor, expected: expected) }
        do {
            try Sys.close(try Sys.open(node, O_RDWR))
        } catch .EACCES {
            return .permission(.EACCES)
        } catch .EPERM {
            return .permission(.EPERM)
        } catch {
            return .openFailed(error)
        }
        return nil
    }

    private static func fileKind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFLNK: "a symbolic link"
        case S_IFSOCK: "a socket"
        case S_IFBLK: "a block device"
        default: "not a device"
        }
    }

    /// One line saying what is wrong and what to do; nil when the driver is usable.
    public var message: String? { problem.map { "\($0.what(node: Self.node)): \($0.fix(node: Self.node))" } }
}

extension KernelDriverProbe.Problem {
    /// What is wrong with `node`.
    public func what(node: String) -> String {
        switch self {
        case .notLoaded: "\(node) is missing and test_hmm is not loaded"
        case .nodeMissing(let major): "test_hmm is loaded (major \(major)) but \(node) does not exist"
        case .notCharacterDevice(let kind): "\(node) is \(kind), not test_hmm's character device"
        case .otherDriver(let major, let minor, let expected):
            "\(node) is device \(major):\(minor), not test_hmm's ("
                + (expected.map { "test_hmm registered major \($0)" } ?? "test_hmm is not loaded") + ")"
        case .permission(let errno): "\(node): \(errno.named)"
        case .openFailed(let errno): "\(node) could not be opened: \(errno.named)"
        }
    }

    /// What to do about it.
    public func fix(node: String) -> String {
        let unit = node.last.flatMap { Int(String($0)) } ?? 0
        return switch self {
        case .notLoaded: "modprobe test_hmm (the kernel needs CONFIG_TEST_HMM), or use --backend sim"
        case .nodeMissing(let major): "mknod \(node) c \(major) \(unit) (or mount devtmpfs), or use --backend sim"
        case .notCharacterDevice: "remove it and reload test_hmm, or use --backend sim"
        case .otherDriver: "fix the node or modprobe test_hmm, or use --backend sim"
        case .permission: "run as root (test_hmm's nodes are root-only), or use --backend sim"
        case .openFailed: "check dmesg for test_hmm, or use --backend sim"
        }
    }
}
