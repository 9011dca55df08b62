import Testing
@testable import Linux
#if canImport(Glibc)
import Glibc
#endif

/// Every input dmirror reads may be anything: missing, huge, garbage, a FIFO,
/// unwritable. Each gets one clear line on stderr and the right exit code.
@Suite("Bad inputs")
struct BadInputTests {
    /// A scratch directory removed afterwards.
    final class Scratch {
        let path: String
        init() {
            var template = Array("/tmp/dmirror-bad-XXXXXX".utf8CString)
            path = String(cString: mkdtemp(&template)!)
        }
        deinit { _ = system("rm -rf '\(path)'") }

        @discardableResult
        func file(_ name: String, _ contents: [UInt8]) -> String {
            let full = path + "/" + name
            let handle = fopen(full, "w")!
            _ = contents.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
            fclose(handle)
            return full
        }

        func directory(_ name: String) -> String {
            let full = path + "/" + name
            mkdir(full, 0o755)
            return full
        }
    }

    /// One line on stderr, `status`, and nothing on stdout.
    func expectRefused(_ arguments: [String], status: Int32 = 1, containing text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let output = try runDmirror(arguments)
        #expect(output.status == status, "\(arguments): \(output.stderr)", sourceLocation: sourceLocation)
        #expect(output.stderrLines.count == 1, "\(arguments): \(output.stderr)", sourceLocation: sourceLocation)
        #expect(output.stderr.contains(text), "\(arguments): \(output.stderr)", sourceLocation: sourceLocation)
        #expect(output.stdout.isEmpty, "\(arguments): \(output.stdout)", sourceLocation: sourceLocation)
    }

    // MARK: The device node

    @Test("a node that is not test_hmm's: a regular file, a directory, a FIFO, /dev/null")
    func nodes() throws {
        let scratch = Scratch()
        let file = scratch.file("hmm_dmirror0", Array("x".utf8))
        #expect(KernelDriverProbe.check(node: file, major: 238) == .notCharacterDevice(kind: "a regular file"))
        #expect(KernelDriverProbe.check(node: scratch.directory("dir"), major: 238) == .notCharacterDevice(kind: "a directory"))
        let fifo = scratch.path + "/fifo"
        mkfifo(fifo, 0o600)
        #expect(KernelDriverProbe.check(node: fifo, major: 238) == .notCharacterDevice(kind: "a FIFO"))
        // /dev/null is 1:3: another driver's device, whether test_hmm is loaded or not.
        #expect(KernelDriverProbe.check(node: "/dev/null", major: 238) == .otherDriver(major: 1, minor: 3, expected: 238))
        #expect(KernelDriverProbe.check(node: "/dev/null", major: nil) == .otherDriver(major: 1, minor: 3, expected: nil))
        #expect(KernelDriverProbe.check(node: scratch.path + "/missing", major: nil) == .notLoaded)
        #expect(KernelDriverProbe.check(node: scratch.path + "/missing", major: 238) == .nodeMissing(major: 238))
        let problem = KernelDriverProbe.Problem.otherDriver(major: 1, minor: 3, expected: nil)
        #expect(problem.what(node: "/dev/hmm_dmirror0") == "/dev/hmm_dmirror0 is device 1:3, not test_hmm's (test_hmm is not loaded)")
    }

    // MARK: Output paths

    @Test("--trace into a file, under a file, or where nothing can be written: refused before a case runs")
    func tracePaths() throws {
        let scratch = Scratch()
        let file = scratch.file("plain", Array("x".utf8))
        try expectRefused(["run", "--backend", "sim", "-t", "open_close", "--trace", file], containing: "--trace")
        try expectRefused(["run", "--backend", "sim", "-t", "open_close", "--trace", file + "/sub"], containing: "--trace")
        try expectRefused(["run", "--backend", "sim", "-t", "open_close", "--trace", "/proc/version/traces"],
                          containing: "--trace")
    }

    @Test("a stdout that cannot be written (a full disk) fails every command with one line")
    func fullStdout() throws {
        let scratch = Scratch()
        let scenario = scratch.file("one.scn", Array("mmap a 1 anon\n".utf8))
        for arguments in [["run", "--backend", "sim", "-t", "open_close"], ["list"], ["abi"], ["abi", "--format", "json"],
                          ["explore", "--list"], ["doctor"], ["scenario", "--backend", "sim", scenario],
                          ["bench", "--backend", "sim", "--only", "read-1", "--iterations", "10", "--repeats", "1", "--thp", "off"]] {
            let output = try runDmirror(arguments, stdoutPath: "/dev/full")
            #expect(output.status == 1, "\(arguments): \(output.status)")
            #expect(output.stderr.contains("ENOSPC"), "\(arguments): \(output.stderr)")
        }
    }

    // MARK: compare-traces

    @Test("compare-traces: a side with no traces, a missing side, a FIFO, garbage, a line too long")
    func compareTraces() throws {
        let scratch = Scratch()
        let good = scratch.directory("good")
        scratch.file("good/hmm.hmm_device_private.open_close.trace", Array("0 open unit=0 ok\n".utf8))
        let empty = scratch.directory("empty")
        try expectRefused(["compare-traces", good, empty], containing: "has no *.trace files")
        try expectRefused(["compare-traces", scratch.path + "/missing", good], containing: "ENOENT")

        let garbage = scratch.directory("garbage")
        scratch.file("garbage/hmm.hmm_device_private.open_close.trace", [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x00, 0xFF, 0x0A])
        let output = try runDmirror(["compare-traces", good, garbage])
        #expect(output.status == 1)
        #expect(output.stderr.contains("not a command trace"), "\(output.stderr)")
        // No raw bytes echoed: every byte of the answer is printable text.
        #expect((output.stdout + output.stderr).utf8.allSatisfy { $0 == 0x0A || (0x20..<0x7F).contains($0) || $0 >= 0x80 })
        #expect(!(output.stdout + output.stderr).utf8.contains(0x7F))

        let long = scratch.directory("long")
        scratch.file("long/hmm.hmm_device_private.open_close.trace", Array(repeating: 0x61, count: 5 << 20))
        let refused = try runDmirror(["compare-traces", good, long])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("a line longer than 4 MiB"), "\(refused.stderr)")

        let fifos = scratch.directory("fifos")
        mkfifo(fifos + "/hmm.hmm_device_private.open_close.trace", 0o600)
        let fifo = try runDmirror(["compare-traces", good, fifos])
        #expect(fifo.status == 1)
        #expect(fifo.stderr.contains("not a regular file"), "\(fifo.stderr)")

        // Two sides with no case in common compare nothing: a failure, said so.
        let other = scratch.directory("other")
        scratch.file("other/hmm.hmm_device_private.anon_read.trace", Array("0 open unit=0 ok\n".utf8))
        let disjoint = try runDmirror(["compare-traces", good, other])
        #expect(disjoint.status == 1)
        #expect(disjoint.stdoutLines.last == "# no case has a trace on both sides: nothing was compared", "\(disjoint.stdout)")
    }

    // MARK: Files dmirror reads

    @Test("bench --compare: missing, a FIFO, a directory, binary, malformed lines")
    func benchBaseline() throws {
        let scratch = Scratch()
        let fifo = scratch.path + "/fifo"
        mkfifo(fifo, 0o600)
        let base = ["bench", "--backend", "sim", "--iterations", "1", "--repeats", "1", "--compare"]
        try expectRefused(base + [scratch.path + "/missing"], containing: "cannot open: ENOENT")
        try expectRefused(base + [fifo], containing: "not a regular file (a FIFO)")
        try expectRefused(base + [scratch.directory("d")], containing: "not a regular file (a directory)")
        try expectRefused(base + [scratch.file("bin", [0x00, 0x01, 0x02])], containing: "binary data (byte 0x0)")
        try expectRefused(base + [scratch.file("bad", Array("read-1 sideways 12\n".utf8))], containing: "bad:1: expected")
        try expectRefused(base + [scratch.file("huge", Array(repeating: 0x20, count: 2 << 20))], containing: "larger than 1024 KiB")
    }

    @Test("doctor --root and explore arguments that cannot be: one line each")
    func otherArguments() throws {
        try expectRefused(["doctor", "--root", "/proc/version"], containing: "not a directory")
        try expectRefused(["explore", "read-munmap", "--schedule", "zero"], containing: "--schedule")
        try expectRefused(["bench", "--walk-pages", "9999"], containing: "--walk-pages")
        try expectRefused(["bench", "--migration", "1,,4"], containing: "--migration")
        try expectRefused(["bench", "--only", "read-2"], containing: "no such operation")
    }

    @Test("filters that select no case exit 4 and name the nearest cases")
    func emptySelection() throws {
        let output = try runDmirror(["run", "--backend", "sim", "-t", "anon_raed"])
        #expect(output.status == 4)
        #expect(output.stderr.contains("anon_read"))
        #expect(output.stdout.isEmpty)
    }
}
