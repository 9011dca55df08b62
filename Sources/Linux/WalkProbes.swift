import ABI
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// dmirror's kprobes on walk_page_range() and walk_page_range_vma(), the two
/// entries to mm/pagewalk.c that hmm_range_fault() and migrate_vma_setup() use:
/// their hits in kprobe_profile are the page-table walks a command made
/// (system-wide: the lab's guest runs nothing else that walks).
public enum WalkProbes {
    /// (event name, probed function).
    static let probes = [("dmirror_walk_page_range", "walk_page_range"),
                         ("dmirror_walk_page_range_vma", "walk_page_range_vma")]
    static let group = "dmirror"

    /// Where tracefs is mounted, if it is.
    static let tracefs: String? = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].first {
        (try? Sys.access($0 + "/kprobe_events", F_OK)) != nil
    }

    /// Why the probes cannot be installed, and what to do.
    public enum Problem: Error, CustomStringConvertible {
        case noTracefs
        case refused(String, Errno)

        public var description: String {
            switch self {
            case .noTracefs:
                "--count-walks needs tracefs with kprobe events: CONFIG_KPROBE_EVENTS=y, "
                    + "and mount -t tracefs nodev /sys/kernel/tracing"
            case .refused(let what, let errno):
                "--count-walks: \(what): \(errno.named)"
                    + (errno == .EACCES || errno == .EPERM ? " (run as root)" : "")
            }
        }
    }

    /// Installs and enables the probes (idempotent: probes already there are kept).
    public static func install() throws(Problem) {
        guard let tracefs else { throw .noTracefs }
        let events = tracefs + "/kprobe_events"
        let existing = SysFile.read(events) ?? ""
        for (name, function) in probes where !existing.contains(":\(group)/\(name) ") {
            do {
                let fd = try Sys.open(events, O_WRONLY | O_APPEND)
                defer { try? Sys.close(fd) }
                try Sys.writeAll(fd, "p:\(group)/\(name) \(function)\n")
            } catch {
                throw .refused("cannot add a kprobe on \(function)() to \(events)", error)
            }
        }
        let enable = "\(tracefs)/events/\(group)/enable"
        do {
            let fd = try Sys.open(enable, O_WRONLY)
            defer { try? Sys.close(fd) }
            try Sys.writeAll(fd, "1\n")
        } catch {
            throw .refused("cannot enable \(enable)", error)
        }
    }

    /// The probes' hits so far, summed; nil when they are not installed.
    public static func hits() -> Int? {
        guard let tracefs, let profile = SysFile.read(tracefs + "/kprobe_profile") else { return nil }
        var total = 0
        var found = 0
        for line in profile.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, probes.contains(where: { $0.0 == fields[0] }), let hits = Int(fields[1]) else { continue }
            total += hits
            found += 1
        }
        return found == probes.count ? total : nil
    }
}
