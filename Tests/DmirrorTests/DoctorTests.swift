import Testing
@testable import Linux
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror doctor` on fake /proc, /sys, /dev and /lib/modules trees.
@Suite("Doctor")
struct DoctorTests {
    /// A throwaway root directory with the files given (path → contents).
    final class FakeRoot {
        let path: String

        init(_ files: [String: String]) throws {
            var template = Array("/tmp/dmirror-doctor-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw Failure.setup("mkdtemp") }
            path = String(cString: made)
            for (name, contents) in files { try write(name, contents) }
        }

        func write(_ name: String, _ contents: String) throws {
            let full = path + name
            var parent = ""
            for part in full.split(separator: "/").dropLast() {
                parent += "/" + part
                mkdir(parent, 0o755)
            }
            guard let file = fopen(full, "w") else { throw Failure.setup("fopen \(full)") }
            fputs(contents, file)
            fclose(file)
        }

        func mknodCharacter(_ name: String, major: UInt32, minor: UInt32) -> Bool {
            mkdir(path + "/dev", 0o755)
            // makedev() for majors under 4096 and minors under 256.
            return mknod(path + name, S_IFCHR | 0o600, dev_t(major << 8 | minor)) == 0
        }

        deinit { _ = system("rm -rf '\(path)'") }
    }

    enum Failure: Error { case setup(String) }

    /// A tree where test_hmm is loaded (major 1, so /dev/null's 1:3 stands in for a
    /// node that opens) with both coherent devices, THP, hugetlb pages, gup_test.
    static let healthy: [String: String] = [
        "/proc/sys/kernel/osrelease": "7.3.4-amd64\n",
        "/proc/devices": "Character devices:\n  1 HMM_DMIRROR\n  4 tty\n\nBlock devices:\n  8 sd\n",
        "/proc/meminfo": "MemTotal: 1 kB\nHugePages_Total:       2\nHugePages_Free:        2\nHugepagesize:       2048 kB\n",
        "/proc/mounts": "debugfs /sys/kernel/debug debugfs rw 0 0\n",
        "/proc/sys/vm/unprivileged_userfaultfd": "0\n",
        "/boot/config-7.3.4-amd64": "CONFIG_HMM_MIRROR=y\nCONFIG_TEST_HMM=m\n",
        "/sys/module/test_hmm/parameters/spm_addr_dev0": "4294967296\n",
        "/sys/module/test_hmm/parameters/spm_addr_dev1": "5368709120\n",
        "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
        "/sys/kernel/debug/gup_test": "",
        "/lib/modules/7.3.4-amd64/modules.dep": "kernel/lib/test_hmm.ko.xz:\n",
    ]

    func checks(_ root: FakeRoot, isRoot: Bool = true) -> [String: Doctor.Check] {
        Dictionary(Doctor.run(Doctor.System(root: root.path, isRoot: isRoot)).map { ($0.name, $0) }) { a, _ in a }
    }

    @Test("a healthy tree: every check passes and doctor exits 0")
    func healthy() throws {
        let root = try FakeRoot(Self.healthy)
        for unit in 0..<4 { try #require(root.mknodCharacter("/dev/hmm_dmirror\(unit)", major: 1, minor: 3)) }
        let found = checks(root)
        for check in found.values { #expect(check.ok, "\(check.name): \(check.detail)") }
        #expect(found["kernel"]?.detail == "Linux 7.3.4-amd64: dmirror ABI 7.3")
        #expect(found["CONFIG_TEST_HMM"]?.detail == "=m, from /boot/config-7.3.4-amd64")
        #expect(found["/dev/hmm_dmirror2"]?.detail.contains("device-coherent at spm_addr_dev0=4294967296") == true)
        let output = try runDmirror(["doctor", "--root", root.path])
        #expect(output.status == 0, "\(output.stdout)")
        #expect(output.stdoutLines.last == "the whole suite can run on the real driver")
        #expect(output.stdoutLines.allSatisfy { $0.hasPrefix("✔") || $0.hasPrefix("the whole") })
    }

    @Test("the module absent: ✘ with the fix, the devices missing, exit 4")
    func moduleAbsent() throws {
        var files = Self.healthy
        files["/proc/devices"] = "Character devices:\n  4 tty\n"
        files["/boot/config-7.3.4-amd64"] = "# CONFIG_TEST_HMM is not set\n"
        files["/lib/modules/7.3.4-amd64/modules.dep"] = "kernel/fs/foo.ko:\n"
        for unit in 0..<2 { files["/sys/module/test_hmm/parameters/spm_addr_dev\(unit)"] = nil }
        let root = try FakeRoot(files)
        let found = checks(root)
        #expect(found["CONFIG_TEST_HMM"]?.ok == false)
        #expect(found["CONFIG_TEST_HMM"]?.fix?.contains("CONFIG_TEST_HMM=m") == true)
        #expect(found["test_hmm"]?.ok == false)
        #expect(found["/dev/hmm_dmirror0"]?.detail == "/dev/hmm_dmirror0 is missing and test_hmm is not loaded")
        #expect(found["/dev/hmm_dmirror0"]?.fix?.hasPrefix("modprobe test_hmm") == true)
        let output = try runDmirror(["doctor", "--root", root.path])
        #expect(output.status == 4)
        #expect(output.stdout.contains("✘ test_hmm: not loaded, and /lib/modules/7.3.4-amd64 has no test_hmm.ko"))
        #expect(output.stdout.contains("without it no case runs on the kernel"))
    }

    @Test("installed but not loaded: modprobe; loaded without spm addresses: no coherent devices, their cases named")
    func notLoadedAndNoCoherent() throws {
        var files = Self.healthy
        files["/proc/devices"] = "Character devices:\n  4 tty\n"
        for unit in 0..<2 { files["/sys/module/test_hmm/parameters/spm_addr_dev\(unit)"] = nil }
        let installed = try FakeRoot(files)
        #expect(checks(installed)["test_hmm"]?.fix?.hasPrefix("modprobe test_hmm") == true)

        var loaded = Self.healthy
        for unit in 0..<2 { loaded["/sys/module/test_hmm/parameters/spm_addr_dev\(unit)"] = "0\n" }
        let root = try FakeRoot(loaded)
        for unit in 0..<2 { try #require(root.mknodCharacter("/dev/hmm_dmirror\(unit)", major: 1, minor: 3)) }
        let found = checks(root)
        #expect(found["/dev/hmm_dmirror1"]?.ok == true)
        #expect(found["/dev/hmm_dmirror2"]?.ok == false)
        #expect(found["/dev/hmm_dmirror2"]?.detail == "absent: test_hmm has no spm_addr_dev0")
        let output = try runDmirror(["doctor", "--root", root.path])
        #expect(output.status == 4)
        #expect(output.stdout.contains("without device-coherent devices: 39 case(s) skip or cannot pass: hmm.hmm_device_coherent.open_close"))
    }

    @Test("a regular file or another driver's device as the node is named for what it is")
    func wrongNodes() throws {
        let root = try FakeRoot(Self.healthy)
        try root.write("/dev/hmm_dmirror0", "not a device\n")
        try #require(root.mknodCharacter("/dev/hmm_dmirror1", major: 4, minor: 1))
        let found = checks(root)
        #expect(found["/dev/hmm_dmirror0"]?.detail == "/dev/hmm_dmirror0 is a regular file, not test_hmm's character device")
        #expect(found["/dev/hmm_dmirror1"]?.detail == "/dev/hmm_dmirror1 is device 4:1, not test_hmm's (test_hmm registered major 1)")
    }

    @Test("not root: the permission ✘, the hugetlb pool and userfaultfd follow from it")
    func notRoot() throws {
        var files = Self.healthy
        files["/proc/meminfo"] = "HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n"
        let root = try FakeRoot(files)
        let found = checks(root, isRoot: false)
        #expect(found["root"]?.ok == false)
        #expect(found["root"]?.fix == "run as root (sudo dmirror ...)")
        #expect(found["hugetlb"]?.ok == false)
        #expect(found["userfaultfd"]?.ok == false)
        #expect(found["userfaultfd"]?.fix?.contains("vm.unprivileged_userfaultfd=1") == true)
    }

    @Test("THP never, no gup_test, no debugfs: each ✘ with its fix and its cases")
    func features() throws {
        var files = Self.healthy
        files["/sys/kernel/mm/transparent_hugepage/enabled"] = "always madvise [never]\n"
        files["/sys/kernel/debug/gup_test"] = nil
        files["/proc/mounts"] = "proc /proc proc rw 0 0\n"
        let root = try FakeRoot(files)
        let found = checks(root)
        #expect(found["THP"]?.ok == false)
        #expect(found["THP"]?.detail == "enabled: never")
        #expect(found["gup_test"]?.fix?.hasPrefix("mount -t debugfs") == true)
        let output = try runDmirror(["doctor", "--root", root.path])
        #expect(output.stdout.contains("without gup_test: 2 case(s) skip or cannot pass: hmm.hmm_device_private.hmm_gup_test"))
        #expect(output.stdout.contains("without transparent huge pages:"))
    }

    @Test("/proc/config.gz is read without zlib, and garbage in it is one line")
    func configGz() throws {
        var files = Self.healthy
        files["/boot/config-7.3.4-amd64"] = nil
        let root = try FakeRoot(files)
        let plain = root.path + "/config"
        try root.write("/config", (0..<3000).map { "CONFIG_OPTION_\($0)=y\n" }.joined() + "CONFIG_TEST_HMM=y\n")
        mkdir(root.path + "/proc", 0o755)
        #expect(system("gzip -9 -c '\(plain)' > '\(root.path)/proc/config.gz'") == 0)
        #expect(checks(root)["CONFIG_TEST_HMM"]?.detail == "=y (built in), from /proc/config.gz")
        // The gzip magic, then bytes that are no DEFLATE stream.
        #expect(system("printf '\\037\\213\\010\\000\\000\\000\\000\\000\\000\\003\\377\\377\\377garbage garbage' > '\(root.path)/proc/config.gz'") == 0)
        #expect(checks(root)["CONFIG_TEST_HMM"]?.detail.hasPrefix("/proc/config.gz: corrupt gzip data") == true)
        try root.write("/proc/config.gz", "plain text")
        #expect(checks(root)["CONFIG_TEST_HMM"]?.detail == "/proc/config.gz: not gzip data")
    }

    @Test("gunzip agrees with gzip on text, repeated runs and random bytes")
    func gunzip() throws {
        let root = try FakeRoot([:])
        var random = SystemRandomNumberGenerator()
        let inputs: [[UInt8]] = [
            Array("hello\n".utf8), [],
            Array(repeating: 0x61, count: 100_000),
            (0..<50_000).map { _ in UInt8.random(in: 0...255, using: &random) },
            Array((0..<20_000).map { "line \($0 % 97)\n" }.joined().utf8),
        ]
        for (index, input) in inputs.enumerated() {
            let plain = root.path + "/in\(index)"
            guard let file = fopen(plain, "w") else { throw Failure.setup("fopen") }
            _ = input.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
            for level in ["-1", "-9"] {
                #expect(system("gzip \(level) -c '\(plain)' > '\(plain).gz'") == 0)
                let fd = open(plain + ".gz", O_RDONLY)
                defer { close(fd) }
                var bytes = [UInt8](repeating: 0, count: 1 << 20)
                let n = read(fd, &bytes, bytes.count)
                let output = try Gunzip.decompress(Array(bytes[0..<max(n, 0)]))
                #expect(output == input, "input \(index) at \(level)")
            }
        }
        #expect(throws: Gunzip.Failure.self) { try Gunzip.decompress([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + Array(repeating: 0xFF, count: 20)) }
        let bomb = Array(repeating: UInt8(0), count: 200_000)
        let path = root.path + "/bomb"
        let file = fopen(path, "w")
        _ = bomb.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        #expect(system("gzip -9 -c '\(path)' > '\(path).gz'") == 0)
        let fd = open(path + ".gz", O_RDONLY)
        defer { close(fd) }
        var small = [UInt8](repeating: 0, count: 1 << 16)
        let n = read(fd, &small, small.count)
        #expect(throws: Gunzip.Failure.self) { try Gunzip.decompress(Array(small[0..<n]), limit: 1000) }
    }

    @Test("--root that is missing or a file is one line, exit 1")
    func badRoot() throws {
        for path in ["/nonexistent-doctor-root", "/etc/hostname"] {
            let output = try runDmirror(["doctor", "--root", path])
            #expect(output.status == 1)
            #expect(output.stderrLines.count == 1)
            #expect(output.stderrLines.first?.hasPrefix("dmirror: doctor: --root \(path): ") == true)
        }
    }
}
