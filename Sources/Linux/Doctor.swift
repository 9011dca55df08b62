import ABI
import MachineInterface
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror doctor`'s checks: what this machine can run and why not. Every file
/// is read under `root` (a fake /proc and /sys tree in the tests, or a guest's
/// root filesystem seen from outside), and each check says which capability it
/// decides, so the caller can name the cases that will skip.
public enum Doctor {
    /// One check's answer.
    public struct Check: Sendable {
        public let name: String
        public let ok: Bool
        /// What was found.
        public let detail: String
        /// What to do, when not ok.
        public let fix: String?
        /// The capability it decides (nil: informational).
        public let capability: MachineCapability?
    }

    /// The system the checks read.
    public struct System: Sendable {
        /// "/" for this machine.
        public let root: String
        /// uname -r (read from `root`/proc/sys/kernel/osrelease when not "/").
        public let release: String
        public let isRoot: Bool

        public init(root: String = "/", release: String? = nil, isRoot: Bool? = nil) {
            self.root = root
            self.release = release ?? (root == "/" ? Sys.kernelRelease()
                : SysFile.read(Self.join(root, "/proc/sys/kernel/osrelease"), limit: 256)?
                    .split(separator: "\n").first.map(String.init) ?? "unknown")
            self.isRoot = isRoot ?? (geteuid() == 0)
        }

        func path(_ absolute: String) -> String { Self.join(root, absolute) }

        static func join(_ root: String, _ absolute: String) -> String {
            root == "/" ? absolute : (root.hasSuffix("/") ? String(root.dropLast()) : root) + absolute
        }

        func read(_ absolute: String, limit: Int = 1 << 20) -> String? { SysFile.read(path(absolute), limit: limit) }

        func exists(_ absolute: String) -> Bool { (try? Sys.access(path(absolute), F_OK)) != nil }
    }

    public static func run(_ system: System) -> [Check] {
        var checks: [Check] = []
        checks.append(kernel(system))
        let config = kernelConfig(system)
        checks.append(config.check)
        checks.append(module(system, config: config.value))
        checks += devices(system)
        checks.append(user(system))
        checks.append(thp(system))
        checks.append(hugetlb(system))
        checks.append(gupTest(system))
        checks.append(userfaultfd(system))
        return checks
    }

    // MARK: The checks

    static func kernel(_ system: System) -> Check {
        guard let version = KernelVersion(release: system.release) else {
            return Check(name: "kernel", ok: false, detail: "release \"\(system.release)\" does not parse",
                         fix: "run on a Linux kernel", capability: .driver)
        }
        guard let abi = ABIGeneration(version) else {
            return Check(name: "kernel", ok: false, detail: "Linux \(system.release) predates test_hmm (5.7)",
                         fix: "boot 5.7 or later", capability: .driver)
        }
        return Check(name: "kernel", ok: true, detail: "Linux \(system.release): dmirror ABI \(abi.rawValue)",
                     fix: nil, capability: nil)
    }

    /// CONFIG_TEST_HMM's value ("y", "m", nil when unset) and the check that says so.
    static func kernelConfig(_ system: System) -> (check: Check, value: String?) {
        var source: String?
        var text: String?
        let boot = "/boot/config-\(system.release)"
        if let plain = system.read(boot, limit: 4 << 20) {
            source = boot
            text = plain
        } else if let fd = try? Sys.open(system.path("/proc/config.gz"), O_RDONLY | O_NONBLOCK) {
            defer { try? Sys.close(fd) }
            var bytes: [UInt8] = []
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
            defer { chunk.deallocate() }
            while bytes.count < 4 << 20, let n = try? Sys.read(fd, into: chunk), n > 0 { bytes += chunk[0..<n] }
            switch Result(catching: { () throws(Gunzip.Failure) in try Gunzip.decompress(bytes) }) {
            case .success(let inflated):
                source = "/proc/config.gz"
                text = String(decoding: inflated, as: UTF8.self)
            case .failure(let failure):
                return (Check(name: "CONFIG_TEST_HMM", ok: false, detail: "/proc/config.gz: \(failure)",
                              fix: "check /proc/config.gz", capability: .driver), nil)
            }
        }
        guard let text, let source else {
            return (Check(name: "CONFIG_TEST_HMM", ok: true,
                          detail: "unknown: no \(boot) and no /proc/config.gz (CONFIG_IKCONFIG_PROC)", fix: nil,
                          capability: nil), nil)
        }
        let value = configValue(text, "CONFIG_TEST_HMM")
        switch value {
        case "y": return (Check(name: "CONFIG_TEST_HMM", ok: true, detail: "=y (built in), from \(source)", fix: nil,
                                capability: nil), value)
        case "m": return (Check(name: "CONFIG_TEST_HMM", ok: true, detail: "=m, from \(source)", fix: nil,
                                capability: nil), value)
        default:
            return (Check(name: "CONFIG_TEST_HMM", ok: false, detail: "not set, in \(source)",
                          fix: "rebuild the kernel with CONFIG_TEST_HMM=m (it needs DEVICE_PRIVATE, HMM_MIRROR, TRANSPARENT_HUGEPAGE)",
                          capability: .driver), nil)
        }
    }

    static func configValue(_ text: String, _ option: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix(option + "=") {
            return String(line.dropFirst(option.count + 1))
        }
        return nil
    }

    static func module(_ system: System, config: String?) -> Check {
        if KernelDriverProbe.registeredMajor(devices: system.read("/proc/devices")) != nil || system.exists("/sys/module/test_hmm") {
            return Check(name: "test_hmm", ok: true, detail: config == "y" ? "built in and registered" : "loaded",
                         fix: nil, capability: nil)
        }
        let modules = "/lib/modules/\(system.release)"
        let listed = system.read(modules + "/modules.dep", limit: 16 << 20)?.contains("/test_hmm.ko") ?? false
        if listed {
            return Check(name: "test_hmm", ok: false, detail: "not loaded (the module is installed)",
                         fix: "modprobe test_hmm (for the coherent devices: spm_addr_dev0=... spm_addr_dev1=...)",
                         capability: .driver)
        }
        return Check(name: "test_hmm", ok: false, detail: "not loaded, and \(modules) has no test_hmm.ko",
                     fix: config == nil ? "build the kernel with CONFIG_TEST_HMM=m and install its modules"
                         : "install the kernel's modules (make modules_install)", capability: .driver)
    }

    static func devices(_ system: System) -> [Check] {
        let major = KernelDriverProbe.registeredMajor(devices: system.read("/proc/devices"))
        var checks: [Check] = []
        let roles: [(Int, MachineCapability)] = [(0, .driver), (1, .secondDevice), (2, .coherentDevices), (3, .coherentDevices)]
        for (unit, capability) in roles {
            let node = KernelDmirrorFile.path(unit: unit)
            let problem = KernelDriverProbe.check(node: system.path(node), major: major)
            var detail = problem.map { $0.what(node: node) } ?? "test_hmm's, opens read-write"
            if unit >= 2 {
                let parameter = "/sys/module/test_hmm/parameters/spm_addr_dev\(unit - 2)"
                if let value = system.read(parameter, limit: 64)?.split(separator: "\n").first, value != "0" {
                    detail += ", device-coherent at spm_addr_dev\(unit - 2)=\(value)"
                } else if problem != nil {
                    detail = "absent: test_hmm has no spm_addr_dev\(unit - 2)"
                }
            }
            let fix: String? = problem.map { problem in
                // Without spm addresses test_hmm creates no coherent device: no node at all.
                let noNode = if case .nodeMissing = problem { true } else { problem == .notLoaded }
                return unit >= 2 && noNode
                    ? "load test_hmm with spm_addr_dev0/spm_addr_dev1 (physical ranges reserved with efi_fake_mem or memmap=)"
                    : problem.fix(node: node)
            }
            checks.append(Check(name: node, ok: problem == nil, detail: detail, fix: fix, capability: capability))
        }
        return checks
    }

    static func user(_ system: System) -> Check {
        system.isRoot ? Check(name: "root", ok: true, detail: "running as root", fix: nil, capability: nil)
            : Check(name: "root", ok: false, detail: "not root: test_hmm's nodes are root-only, and the suite raises nr_hugepages",
                    fix: "run as root (sudo dmirror ...)", capability: .driver)
    }

    static func thp(_ system: System) -> Check {
        guard let text = system.read("/sys/kernel/mm/transparent_hugepage/enabled", limit: 256) else {
            return Check(name: "THP", ok: false, detail: "no /sys/kernel/mm/transparent_hugepage (CONFIG_TRANSPARENT_HUGEPAGE)",
                         fix: "build with CONFIG_TRANSPARENT_HUGEPAGE", capability: .transparentHugePages)
        }
        let mode = text.split(separator: " ").first { $0.hasPrefix("[") }.map { String($0.dropFirst().prefix { $0 != "]" }) } ?? "?"
        let ok = mode == "always" || mode == "madvise"
        return Check(name: "THP", ok: ok, detail: "enabled: \(mode)",
                     fix: ok ? nil : "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled", capability: .transparentHugePages)
    }

    static func hugetlb(_ system: System) -> Check {
        let meminfo = system.read("/proc/meminfo") ?? ""
        func field(_ name: String) -> Int? {
            meminfo.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
        }
        guard let total = field("HugePages_Total"), let free = field("HugePages_Free") else {
            return Check(name: "hugetlb", ok: false, detail: "no HugePages_ lines in /proc/meminfo (CONFIG_HUGETLBFS)",
                         fix: "build with CONFIG_HUGETLBFS", capability: .hugetlbPages)
        }
        let size = field("Hugepagesize").map { " of \($0) kB" } ?? ""
        if free >= 1 {
            return Check(name: "hugetlb", ok: true, detail: "\(free) of \(total) pages\(size) free", fix: nil, capability: nil)
        }
        return system.isRoot
            ? Check(name: "hugetlb", ok: true, detail: "no free pages\(size); the suite raises nr_hugepages (root)",
                    fix: nil, capability: nil)
            : Check(name: "hugetlb", ok: false, detail: "no free pages\(size), and only root can raise nr_hugepages",
                    fix: "echo 2 > /proc/sys/vm/nr_hugepages (as root)", capability: .hugetlbPages)
    }

    static func gupTest(_ system: System) -> Check {
        if system.exists("/sys/kernel/debug/gup_test") {
            return Check(name: "gup_test", ok: true, detail: "/sys/kernel/debug/gup_test", fix: nil, capability: nil)
        }
        let mounted = system.read("/proc/mounts")?.contains(" /sys/kernel/debug debugfs ") ?? false
        return Check(name: "gup_test", ok: false,
                     detail: mounted ? "debugfs is mounted but has no gup_test" : "no /sys/kernel/debug/gup_test",
                     fix: mounted ? "build with CONFIG_GUP_TEST" : "mount -t debugfs none /sys/kernel/debug (and CONFIG_GUP_TEST)",
                     capability: .gupTest)
    }

    static func userfaultfd(_ system: System) -> Check {
        let sysctl = system.read("/proc/sys/vm/unprivileged_userfaultfd", limit: 64)?.split(separator: "\n").first
        if system.isRoot {
            return Check(name: "userfaultfd", ok: true, detail: "root may use it", fix: nil, capability: nil)
        }
        if sysctl == "1" {
            return Check(name: "userfaultfd", ok: true, detail: "vm.unprivileged_userfaultfd = 1", fix: nil, capability: nil)
        }
        return Check(name: "userfaultfd", ok: false,
                     detail: "not root, and vm.unprivileged_userfaultfd = \(sysctl.map(String.init) ?? "unknown")",
                     fix: "sysctl vm.unprivileged_userfaultfd=1, or run as root", capability: .userfaultfd)
    }
}
