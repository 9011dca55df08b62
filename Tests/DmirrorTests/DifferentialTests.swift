import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `--against-sim`: the real kernel's result lines beside the simulator's, configured as
/// the running kernel. A scenario that opens no device runs on this machine's own mm, so
/// the whole path (kernel run, simulator twin, line-by-line comparison) runs here.
@Suite("Scenarios against the simulator (--against-sim)")
struct DifferentialTests {
    static func file(_ text: String) throws -> String {
        let scratch = try TraceScratch()
        let path = scratch.path + "/mm.scn"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return path
    }

    @Test("this kernel's mm and the simulator give the same lines: mmap, store, load, mprotect, munmap, SIGSEGV, fork")
    func mmOnlyAgrees() throws {
        let path = try Self.file("""
            mmap a 8 anon
            store a seq
            load a[1:3]
            fork {
              store a[0] fill(7)
              load a[0]
            }
            load a[0]
            munmap a[7]
            load a[6]
            mprotect a[2] r
            store a[2] fill(1)
            """)
        let r = try runDmirror(["scenario", "--backend", "kernel", "--against-sim", path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdoutLines.last == "# against the simulator: 1 same, 0 differ", "\(r.stdout)")
        #expect(r.stdoutLines.contains { $0.hasSuffix("store a[2] fill(0x01) => signal=SIGSEGV") }, "\(r.stdout)")
    }

    @Test("--against-sim needs the kernel backend; fuzz too")
    func needsKernel() throws {
        let path = try Self.file("mmap a 1 anon\n")
        for arguments in [["scenario", "--backend", "sim", "--against-sim", path],
                          ["scenario", "--against-sim", path],
                          ["fuzz", "--backend", "sim", "--against-sim", "--count", "1"]] {
            let r = try runDmirror(arguments)
            #expect(r.status == 1, "\(arguments)")
            #expect(r.stderr.contains("--against-sim compares the real driver with the simulator: it needs --backend kernel"),
                    "\(r.stderr)")
        }
    }
}
