import Foundation
import Testing
import ABI
import MachineInterface
import Simulator
@testable import Harness
@testable import Suite
#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory under /tmp, removed with its files by `remove()`.
struct TraceScratch {
    let path: String

    init() throws {
        var template = Array("/tmp/dmirror-trace-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Errno(rawValue: errno) }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(file(name)) }
        }
        closedir(dir)
        rmdir(path)
    }
}

@Suite("Trace: recording dmirror commands")
struct TraceRecordingTests {
    /// A traced simulator process writing to a scratch file; returns the trace's lines after `body`.
    func record(_ body: (TracingMachine) throws -> Void) throws -> [String] {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        let trace = try CommandTrace.create(directory: scratch.path, caseName: "unit.test.case")
        defer { close(trace.descriptor.rawValue) }
        try body(TracingMachine(base: SimKernel().spawnProcess(), trace: trace))
        return try readLines(of: CommandTrace.path(directory: scratch.path, caseName: "unit.test.case"))
    }

    @Test("READ, SNAPSHOT, WRITE, an errno and an unknown request each leave one line")
    func commands() throws {
        var expectedData = ""
        let lines = try record { machine in
            let pageSize = machine.pageSize
            let device = try machine.openMirror(unit: 0)
            #expect(device.file is TracingDmirrorFile)
            let addr = try machine.mmap(address: nil, length: 4 * pageSize, protection: [.read, .write],
                                        flags: [.private, .anonymous], source: .anonymous, offset: 0)
            // The CPU writes the first two pages; the other two stay unpopulated.
            let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * pageSize, alignment: pageSize)
            defer { data.deallocate() }
            for index in 0..<(2 * pageSize) { data[index] = UInt8(truncatingIfNeeded: index &* 7) }
            machine.store(addr, from: UnsafeRawBufferPointer(rebasing: data[0..<(2 * pageSize)]))

            #expect(try device.snapshot(addr, npages: 4) == [.write, .write, .none, .none])

            let mirror = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * pageSize, alignment: pageSize)
            defer { mirror.deallocate() }
            let read = try device.read(addr, npages: 2, into: mirror)
            #expect(read.cpages == 2)
            expectedData = TraceDigest.current.field(UnsafeRawBufferPointer(rebasing: data[0..<(2 * pageSize)]))

            _ = try device.write(addr, npages: 2, from: UnsafeRawBufferPointer(mirror))

            // The prologue rejects an unaligned address.
            #expect(throws: DmirrorError.failed(.read, .EINVAL)) {
                try device.read(addr + 1, npages: 1, into: mirror)
            }
            // A request no generation defines.
            var cmd = DmirrorCmd(addr: addr, ptr: 0, npages: 1)
            if case .failure(let error) = device.file.ioctl(request: 0xdead, &cmd) {
                #expect(error == .EINVAL)
            } else {
                Issue.record("request 0xdead succeeded")
            }
            try device.setFlags(.failAlloc)
            #expect(throws: Errno.ENOENT) { try machine.openMirror(unit: 99) }
            try device.close()
        }
        #expect(lines == [
            "# dmirror command trace v2: unit.test.case",
            "0 open unit=0 ok",
            // walks=N: the page-table walks the command made (one walk_page_range() per
            // hmm_range_fault() pass; none where nothing was walked).
            "0 HMM_DMIRROR_SNAPSHOT unit=0 npages=4 addr=aligned ok cpages=4 faults=0 snapshot=02x2 00x2 walks=1",
            "0 HMM_DMIRROR_READ unit=0 npages=2 addr=aligned ok cpages=2 faults=1 data=\(expectedData) walks=1",
            "0 HMM_DMIRROR_WRITE unit=0 npages=2 addr=aligned ok cpages=2 faults=0 walks=0",
            "0 HMM_DMIRROR_READ unit=0 npages=1 addr=unaligned errno=EINVAL walks=0",
            "0 ioctl(0xdead) unit=0 npages=1 addr=aligned errno=EINVAL walks=0",
            "0 HMM_DMIRROR_FLAGS unit=0 flags=0x1 addr=aligned ok cpages=0 faults=0 walks=0",
            "0 open unit=99 errno=ENOENT",
            "0 close unit=0 ok",
        ])
    }

    @Test("A forked child's commands are recorded as logical process 1; mmap of a traced device works")
    func forkedChild() throws {
        let lines = try record { machine in
            let pageSize = machine.pageSize
            let device = try machine.openMirror(unit: 0)
            // mmap(2) of the device file: the base machine must get its own file back.
            let mapped = try machine.mmap(address: nil, length: pageSize, protection: [.read, .write],
                                          flags: [.shared], source: .device(device), offset: 0)
            #expect(mapped != 0)
            let child = try machine.fork { childMachine in
                #expect(childMachine is TracingMachine)
                let mine = try childMachine.openMirror(unit: 1)
                _ = try mine.snapshot(mapped, npages: 1)
                try mine.close()
                return 0
            }
            #expect(try child.wait() == .exited(0))
            _ = try device.snapshot(mapped, npages: 1)
            try device.close()
        }
        #expect(lines.dropFirst().map { String($0.prefix(while: { $0 != " " })) } == ["0", "1", "1", "1", "0", "0"])
        #expect(lines[2] == "1 open unit=1 ok")
        #expect(lines[3].hasPrefix("1 HMM_DMIRROR_SNAPSHOT unit=1 npages=1 addr=aligned ok cpages=1"))
        #expect(lines[5].hasPrefix("0 HMM_DMIRROR_SNAPSHOT unit=0 npages=1 addr=aligned ok cpages=1"))
    }

    @Test("Run-length encoding of snapshot bytes")
    func runLength() {
        #expect(TraceFormat.runLength([]) == "")
        #expect(TraceFormat.runLength([0x01]) == "01")
        #expect(TraceFormat.runLength([0xff, 0xff]) == "ffx2")
        #expect(TraceFormat.runLength([0x11, 0x11, 0x01, 0x02] + [UInt8](repeating: 0x22, count: 1020))
                == "11x2 01 02 22x1020")
        #expect(TraceFormat.runLength([0x02, 0x00, 0x02]) == "02 00 02")
    }

    @Test("The data digest is FNV-1a 64, at any alignment and length")
    func digest() {
        func reference(_ bytes: [UInt8]) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            return hash
        }
        func digest(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { TraceFormat.digest($0) } }
        // Published FNV-1a 64 test vectors.
        #expect(digest([]) == 0xcbf2_9ce4_8422_2325)
        #expect(digest(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(digest(Array("foobar".utf8)) == 0x8594_4171_f739_67e8)
        let bytes = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let slice = Array(bytes[start..<end])
                let got = bytes.withUnsafeBytes { TraceFormat.digest(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
                #expect(got == reference(slice), "bytes \(start)..<\(end)")
            }
        }
        #expect(TraceFormat.data(UnsafeRawBufferPointer(start: nil, count: 0)) == "fnv1a64:cbf29ce484222325")
        #expect(TraceDigest.fnv1a64.field(UnsafeRawBufferPointer(start: nil, count: 0)) == "fnv1a64:cbf29ce484222325")
    }

    @Test("v2's word digest: the reference fold at any alignment and length, and a one-word change always shows")
    func wordDigest() {
        func reference(_ bytes: [UInt8]) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            var index = 0
            while index + 8 <= bytes.count {
                var word: UInt64 = 0
                for k in 0..<8 { word |= UInt64(bytes[index + k]) << (8 * k) }
                hash = (hash ^ word) &* 0x0000_0100_0000_01b3
                index += 8
            }
            for byte in bytes[index...] { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            return hash ^ (hash >> 32)
        }
        let digest = TraceDigest.fnv1a64w
        let bytes = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let got = bytes.withUnsafeBytes { digest.digest(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
                #expect(got == reference(Array(bytes[start..<end])), "bytes \(start)..<\(end)")
            }
        }
        // Each step is a bijection of the state, so changing any one byte (high bits included) changes the digest.
        let base = bytes.withUnsafeBytes { digest.digest($0) }
        for index in bytes.indices {
            for bit in [0, 7] {
                var changed = bytes
                changed[index] ^= UInt8(1 << bit)
                #expect(changed.withUnsafeBytes { digest.digest($0) } != base, "byte \(index) bit \(bit)")
            }
        }
        #expect(TraceDigest(version: 1) == .fnv1a64 && TraceDigest(version: 2) == .fnv1a64w && TraceDigest(version: 3) == nil)
        #expect(TraceDigest.current.version == 2)
    }
}

@Suite("Trace: compare-traces")
struct TraceComparisonTests {
    @Test("Comment lines are skipped, line numbers are the files', a short trace differs at its end")
    func lines() {
        #expect(TraceComparison.compareLines(["# a", "0 open unit=0 ok"], ["# b", "0 open unit=0 ok"]) == .same)
        #expect(TraceComparison.compareLines(["# a", "x", "y"], ["x", "z"])
                == .differs(lineA: 3, textA: "y", lineB: 2, textB: "z"))
        #expect(TraceComparison.compareLines(["x", "y"], ["x"])
                == .differs(lineA: 2, textA: "y", lineB: 2, textB: nil))
    }

    @Test("Traces of two versions (two data digests) are refused with the fix, not compared line by line")
    func mixedVersions() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        let v1 = scratch.path + "/a.trace", v2 = scratch.path + "/b.trace"
        try "# dmirror command trace v1: a\n0 open unit=0 ok\n".write(toFile: v1, atomically: true, encoding: .utf8)
        try "# dmirror command trace v2: a\n0 open unit=0 ok\n".write(toFile: v2, atomically: true, encoding: .utf8)
        #expect(throws: TraceComparison.Failure.mixedVersions(v1, 1, v2, 2)) { try TraceComparison.compareFiles(v1, v2) }
        let message = TraceComparison.Failure.mixedVersions(v1, 1, v2, 2).description
        #expect(message.contains("fnv1a64 vs fnv1a64w") && message.contains("--trace-digest fnv1a64"), "\(message)")
        #expect(try TraceComparison.compareFiles(v2, v2) == .same)
    }

    @Test("Nondeterministic cases are named in one place")
    func policy() {
        #expect(!TracePolicy.isDeterministic("hmm.hmm_device_private.anon_teardown"))
        #expect(!TracePolicy.isDeterministic("hmm.hmm_device_coherent.benchmark_thp_migration"))
        #expect(TracePolicy.isDeterministic("hmm.hmm_device_private.anon_write_child"))
        #expect(TracePolicy.isDeterministic("hmm.hmm_device_private.exclusive_cow"))
    }

    /// Rewrites line `number` (1-based) of `path`.
    func edit(_ path: String, line number: Int, to text: String) throws {
        var lines = try readLines(of: path)
        lines[number - 1] = text
        let text = lines.map { $0 + "\n" }.joined()
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        #expect(text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count)
        close(fd)
    }

    @Test("Two simulator runs are the same; a hand-edited trace differs at its first changed line")
    func endToEnd() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        let a = scratch.path + "/a"
        let b = scratch.path + "/b"
        let cases = ["-r", "hmm.hmm_device_private.anon_read", "-r", "hmm.hmm_device_private.anon_write_child",
                     "-r", "hmm.hmm_device_private.anon_teardown", "-r", "hmm2.hmm2_device_private.snapshot"]
        defer { for directory in [a, b] { scratch.removeTree(directory) } }
        for directory in [a, b] {
            let run = try runDmirror(["run", "--backend", "sim", "--trace", directory] + cases)
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        }

        let snapshot = try readLines(of: CommandTrace.path(directory: a, caseName: "hmm2.hmm2_device_private.snapshot"))
        #expect(snapshot.contains { $0.contains("HMM_DMIRROR_SNAPSHOT") && $0.contains(" snapshot=") })
        #expect(snapshot.last == "end pass")
        let child = try readLines(of: CommandTrace.path(directory: a, caseName: "hmm.hmm_device_private.anon_write_child"))
        // The line ends with the command's walks=N.
        #expect(child.contains { $0.hasPrefix("1 HMM_DMIRROR_WRITE unit=0 npages=1024 addr=aligned ok cpages=1024 faults=1 ") })

        let same = try runDmirror(["compare-traces", a, b])
        #expect(same.status == 0, "\(same.stdout)\(same.stderr)")
        #expect(same.stdoutLines.contains("hmm.hmm_device_private.anon_read: same"))
        #expect(same.stdoutLines.contains("hmm.hmm_device_private.anon_write_child: same"))
        #expect(same.stdoutLines.contains("hmm2.hmm2_device_private.snapshot: same"))
        #expect(same.stdoutLines.contains("hmm.hmm_device_private.anon_teardown: nondeterministic (not compared)"))

        // A nondeterministic case may differ without failing the comparison.
        try edit(CommandTrace.path(directory: b, caseName: "hmm.hmm_device_private.anon_teardown"), line: 3, to: "0 anything")
        // A deterministic one may not.
        let edited = CommandTrace.path(directory: b, caseName: "hmm.hmm_device_private.anon_read")
        let original = try readLines(of: edited)[2]
        try edit(edited, line: 3, to: "0 HMM_DMIRROR_READ unit=0 npages=1024 addr=aligned errno=EFAULT")
        let differs = try runDmirror(["compare-traces", a, b])
        #expect(differs.status == 1)
        #expect(differs.stdoutLines.contains("hmm.hmm_device_private.anon_read: differs"))
        #expect(differs.stdoutLines.contains("  A:3: \(original)"))
        #expect(differs.stdoutLines.contains("  B:3: 0 HMM_DMIRROR_READ unit=0 npages=1024 addr=aligned errno=EFAULT"))
        #expect(differs.stdoutLines.contains("hmm.hmm_device_private.anon_teardown: nondeterministic (not compared)"))
        #expect(differs.stdoutLines.contains("hmm.hmm_device_private.anon_write_child: same"))

        // --ignore takes a case name or a test name; a case only one side has is reported, not failed.
        unlink(CommandTrace.path(directory: b, caseName: "hmm2.hmm2_device_private.snapshot"))
        let ignored = try runDmirror(["compare-traces", a, b, "--ignore", "anon_read"])
        #expect(ignored.status == 0, "\(ignored.stdout)")
        #expect(ignored.stdoutLines.contains("hmm.hmm_device_private.anon_read: ignored"))
        #expect(ignored.stdoutLines.contains("hmm2.hmm2_device_private.snapshot: missing in B"))
        let strict = try runDmirror(["compare-traces", a, b, "--ignore", "anon_read", "--fail-on-missing"])
        #expect(strict.status == 1)
    }

    @Test("A trace directory that does not exist is an error")
    func missingDirectory() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        let missing = try runDmirror(["compare-traces", scratch.path + "/nope", scratch.path])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope"))
    }
}

extension TraceScratch {
    /// Removes `directory` (one level of files) inside the scratch directory.
    func removeTree(_ directory: String) {
        guard let dir = opendir(directory) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        closedir(dir)
        rmdir(directory)
    }
}

/// A text file's lines (without the final newline's empty line).
func readLines(of path: String) throws -> [String] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 { bytes += chunk[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw Errno(rawValue: errno) }
        break
    }
    var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if lines.last == "" { lines.removeLast() }
    return lines
}
