import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Lines in the kernel log around each case, so the lab can attribute every
/// WARNING/BUG/lockdep splat to the case that was running:
///
///     <tag>: BEGIN <suite> <case>
///     <tag>: END <suite> <case> rc=<0|1|4>
///
/// END is written after the case process was reaped and its group killed, so
/// what the kernel does while the case exits (closing a device file evicts
/// its pages) lands before it.
public final class KmsgMarkers: Sendable {
    let fd: FileDescriptor
    let tag: String
    let suite: String

    /// Opens `path` (/dev/kmsg) for writing; fails with the errno (not root, no /dev/kmsg).
    public init(path: String = "/dev/kmsg", tag: String = "dmirror-lab", suite: String = "dmirror") throws(Errno) {
        fd = try Sys.open(path, O_WRONLY)
        self.tag = tag
        self.suite = suite
    }

    deinit { try? Sys.close(fd) }

    func begin(_ name: CaseName) { begin(name.description) }

    /// BEGIN for a unit of work named `name` (a case, or an explored scenario).
    public func begin(_ name: String) {
        try? Sys.writeAll(fd, "\(tag): BEGIN \(suite) \(name)\n")
    }

    /// END with the unit's kselftest status.
    public func end(_ name: String, rc: Int32) {
        try? Sys.writeAll(fd, "\(tag): END \(suite) \(name) rc=\(rc)\n")
    }

    func end(_ name: CaseName, status: Verdict?) {
        let rc = switch status {
        case .pass?: KSFTExit.pass
        case .skip?: KSFTExit.skip
        default: KSFTExit.fail
        }
        end(name.description, rc: rc)
    }
}
