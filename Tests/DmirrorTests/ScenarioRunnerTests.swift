import ABI
import Testing
@testable import Scenario
import Simulator
#if canImport(Glibc)
import Glibc
#endif

/// The runner on the simulator, in this process and through `dmirror scenario`
/// (each scenario in its own process, so a SIGSEGV ends only its scenario).
@Suite("Scenario runner")
struct ScenarioRunnerTests {
    /// Runs `text` on a fresh simulated process here (no fork: it must not fault).
    static func lines(_ text: String) throws -> [String] {
        let scenario = try ScenarioParser.parse(text, file: "t.scn")
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let collected = Lines()
        ScenarioRunner(scenario) { collected.all.append($0) }.run(on: SimKernel().spawnProcess())
        return collected.all.filter { !$0.hasPrefix("? ") }
    }

    @Test("one canonical line per operation: errno, cpages, faults, snapshot bytes, data digest")
    func canonicalLines() throws {
        let lines = try Self.lines("""
            open d 0
            mmap a 4 anon
            store a seq
            migrate_to_dev d a
            expect ok cpages=4 data=seq
            snapshot d a[0:2]
            read d a[1]
            expect cpages=1 faults=0
            mprotect a[3] none
            read d a
            expect errno=EFAULT
            ioctl d nr=77
            file nofile 1
            mmap b 2 file nofile
            load b[0]
            """)
        let seq = TraceFormatDigest.seq(pages: 0..<4)
        #expect(lines == [
            "1: open d 0 => ok",
            "2: mmap a 4 anon => ok",
            "3: store a seq => ok",
            "4: migrate_to_dev d a => ok cpages=4 faults=0 data=\(seq)",
            "5: expect ok cpages=4 data=seq => ok",
            "6: snapshot d a[0:2] => ok cpages=2 faults=0 snapshot=22x2",
            "7: read d a[1] => ok cpages=1 faults=0 data=\(TraceFormatDigest.seq(pages: 1..<2))",
            "8: expect cpages=1 faults=0 => ok",
            "9: mprotect a[3] none => ok",
            "10: read d a => errno=EFAULT",
            "11: expect errno=EFAULT => ok",
            "12: ioctl d nr=77 => errno=EINVAL",
            "13: file nofile 1 => ok",
            "14: mmap b 2 file nofile => ok",
            "15: load b[0] => ok data=\(TraceFormatDigest.zero(pages: 1))",
        ], "\(lines.joined(separator: "\n"))")
    }

    @Test("a mismatching expect line says what it got; the shadow model checks every page")
    func mismatchAndChecks() throws {
        let lines = try Self.lines("mmap a 2 anon\nstore a fill(0x11)\nexpect errno=EINVAL\nload a\nexpect data=zero\n")
        #expect(lines[2] == "3: expect errno=EINVAL => mismatch: errno=EINVAL (got ok)")
        #expect(lines[4].hasPrefix("5: expect data=zero => mismatch: data=zero (got ok data=fnv1a64:"))
        #expect(!lines.contains { $0.hasPrefix("!") })
    }

    @Test("a CPU access that gets SIGSEGV ends its scenario with that line, and the next scenario runs")
    func segfaultEndsOnlyItsScenario() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        try write(scratch.file("one.scn"), "mmap a 2 anon\nmunmap a[1]\nload a[1]\nexpect signal=SIGSEGV\nload a[0]\n")
        try write(scratch.file("two.scn"), "mmap b 1 anon\nfork {\n  munmap b\n  store b seq\n}\nexpect signal=SIGSEGV\nload b\nexpect data=zero\n")
        let run = try runDmirror(["scenario", "--backend", "sim", scratch.file("one.scn"), scratch.file("two.scn")])
        let out = run.stdoutLines
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(out.contains("3: load a[1] => signal=SIGSEGV"), "\(run.stdout)")
        #expect(out.contains("4: expect signal=SIGSEGV => ok"), "\(run.stdout)")
        #expect(!out.contains { $0.hasPrefix("5: load a[0]") }, "the scenario ended at its SIGSEGV")
        #expect(out.contains("  4: store b seq => signal=SIGSEGV"), "\(run.stdout)")
        #expect(out.contains("5: } => signal=SIGSEGV"), "\(run.stdout)")
        #expect(out.contains("8: expect data=zero => ok"), "the parent ran on after its child's SIGSEGV: \(run.stdout)")
        #expect(out.contains { $0.hasSuffix("two.scn: pass") }, "\(run.stdout)")
        #expect(!run.stdout.contains("Backtrac"), "a CPU fault is an end, not a crash report")
    }

    @Test("expect lines make a test: all hold → exit 0; one does not → exit 1")
    func exitStatus() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        try write(scratch.file("ok.scn"), "mmap a 1 anon\nstore a seq\nload a\nexpect ok data=seq\n")
        try write(scratch.file("bad.scn"), "mmap a 1 anon\nload a\nexpect data=seq\n")
        #expect(try runDmirror(["scenario", "--backend", "sim", scratch.file("ok.scn")]).status == 0)
        let bad = try runDmirror(["scenario", "--backend", "sim", "--format", "jsonl", scratch.file("ok.scn"), scratch.file("bad.scn")])
        #expect(bad.status == 1)
        let objects = bad.stdoutLines.filter { $0.hasPrefix("{\"scenario\"") }
        #expect(objects.count == 2)
        #expect(objects[0].contains("\"passed\": true") && objects[1].contains("\"passed\": false"), "\(bad.stdout)")
        #expect(objects[1].contains("\"3: expect data=seq => mismatch: data=seq (got ok data=fnv1a64:"), "\(bad.stdout)")
    }

    @Test("bad input: one error line naming file:line:column, exit 1, and nothing runs")
    func badInput() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        try write(scratch.file("good.scn"), "mmap a 1 anon\nload a\n")
        try write(scratch.file("op.scn"), "mmap a 1 anon\nfrobnicate a\n")
        try write(scratch.file("empty.scn"), "")
        try write(scratch.file("bin.scn"), "mmap a 1 anon\n\u{1}\u{2}\n")
        #expect(mkfifo(scratch.file("fifo"), 0o600) == 0)
        // 100 MB on one line, written in pieces: the reader must refuse it at byte 4097.
        let fd = open(scratch.file("long.scn"), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let piece = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<100 { _ = piece.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        close(fd)
        let cases: [(String, String)] = [
            ("op.scn", "op.scn:2:1: unknown operation \"frobnicate\""),
            ("empty.scn", "empty.scn:1:1: empty scenario"),
            ("bin.scn", "bin.scn:2:1: binary data (byte 0x01)"),
            ("fifo", "fifo:1:1: not a regular file (a FIFO)"),
            ("long.scn", "long.scn:1:4097: line longer than 4096 bytes"),
            ("missing.scn", "missing.scn:1:1: cannot open: ENOENT"),
        ]
        for (file, message) in cases {
            let run = try runDmirror(["scenario", "--backend", "sim", scratch.file("good.scn"), scratch.file(file)])
            #expect(run.status == 1, "\(file): \(run.stderr)")
            #expect(run.stderrLines.count == 1, "\(file): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(file): \(run.stderr)")
            #expect(run.stdout.isEmpty, "nothing runs when an input is bad: \(run.stdout)")
        }
    }

    @Test("mm-only scenarios give the real kernel's lines on the simulator (the host kernel is the oracle)")
    func kernelAgreesOnPlainMM() throws {
        let scratch = try TraceScratch()
        defer { scratch.remove() }
        try write(scratch.file("mm.scn"), """
            mmap a 1024 anon align=pmd hugepage
            store a seq
            madvise a[100:200] dontneed
            load a[99:101]
            munmap a[300:301]
            mprotect a[0:4] r
            mremap a[512:1024] b 512 maymove
            load b[0:2]
            file f 3 rand(2)
            mmap s 4 file f shared
            load s[0:3]
            fork {
              store s[0] fill(0x31)
              store a[10] zero
            }
            load s[0]
            load a[10]
            load s[3]

            """)
        let kernel = try runDmirror(["scenario", "--backend", "kernel", scratch.file("mm.scn")])
        let sim = try runDmirror(["scenario", "--backend", "sim", scratch.file("mm.scn")])
        let compared = { (r: ProcessOutput) in r.stdoutLines.filter { !$0.hasPrefix("#") } }
        #expect(sim.status == 0, "\(sim.stdout)")
        #expect(compared(kernel) == compared(sim), "kernel:\n\(kernel.stdout)\nsim:\n\(sim.stdout)")
        #expect(compared(sim).last == "18: load s[3] => signal=SIGBUS")
    }

    func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}

/// The digests result lines print for pattern pages.
enum TraceFormatDigest {
    static func seq(pages: Range<Int>) -> String { text(Pattern.seq(0).digest(pages: pages.lowerBound, count: pages.count, pageSize: 4096)) }
    static func zero(pages: Int) -> String { text(Pattern.zero.digest(pages: 0, count: pages, pageSize: 4096)) }
    static func text(_ d: UInt64) -> String {
        let hex = String(d, radix: 16)
        return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
