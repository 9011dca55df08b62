import ABI
import Harness
import Syscalls
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The syscall layer's seam: calls are recorded, an errno can be forced, and
/// EINTR is retried in the one place that handles it.
@Suite("Syscalls: the recording and errno-forcing seam")
struct SyscallTests {
    /// A pipe with `text` written into it; its read end.
    func pipeHolding(_ text: String) throws -> FileDescriptor {
        let ends = try Sys.pipe()
        try Sys.writeAll(ends.write, text)
        try Sys.close(ends.write)
        return ends.read
    }

    @Test("Calls are recorded with their arguments, in order")
    func recording() throws {
        let recorder = SyscallRecorder()
        let fd = try pipeHolding("x")
        defer { try? Sys.close(fd) }
        let n = try recorder.recording { () throws(Errno) -> Int in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
            defer { buffer.deallocate() }
            return try Sys.read(fd, into: buffer)
        }
        #expect(n == 1)
        #expect(recorder.calls.map(\.name) == ["read"])
        #expect(recorder.calls.first?.arguments == [String(fd.rawValue), "8"])
    }

    @Test("A forced EINTR is retried where the call restarts; the call then succeeds")
    func interruptedIsRetried() throws {
        let recorder = SyscallRecorder()
        recorder.fail("read", with: .EINTR, times: 2)
        let fd = try pipeHolding("hello")
        defer { try? Sys.close(fd) }
        let got = try recorder.recording { () throws(Errno) -> Int in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
            defer { buffer.deallocate() }
            return try Sys.read(fd, into: buffer)
        }
        #expect(got == 5)
        #expect(recorder.calls.map(\.name) == ["read", "read", "read"])
    }

    @Test("A forced errno other than EINTR is thrown at once, typed")
    func forcedErrno() throws {
        let recorder = SyscallRecorder()
        recorder.fail("open", with: .EACCES)
        #expect(throws: Errno.EACCES) {
            try recorder.recording { () throws(Errno) in _ = try Sys.open("/dev/null", O_RDONLY) }
        }
        #expect(recorder.calls.count == 1)
        // Outside the recording nothing is forced.
        try Sys.close(try Sys.open("/dev/null", O_RDONLY))
    }

    @Test("close is never retried (Linux frees the descriptor even on EINTR)")
    func closeNotRetried() throws {
        let recorder = SyscallRecorder()
        recorder.fail("close", with: .EINTR, times: 1)
        let fd = try Sys.open("/dev/null", O_RDONLY)
        #expect(throws: Errno.EINTR) { try recorder.recording { () throws(Errno) in try Sys.close(fd) } }
        #expect(recorder.calls.map(\.name) == ["close"])
        try Sys.close(fd)
    }

    @Test("A report whose stdout write fails remembers it: the run fails instead of passing")
    func reportWriteFailure() throws {
        let recorder = SyscallRecorder()
        recorder.fail("write", with: .ENOSPC)
        let sink = StandardSink()
        recorder.recording { sink.out("# a report line nobody will see") }
        #expect(sink.failure?.stream == 1)
        #expect(sink.failure?.errno == .ENOSPC)
    }

    @Test("Errno is printed by name")
    func names() {
        #expect(Errno.ENOSPC.named == "ENOSPC (No space left on device)")
        #expect(Errno.EISDIR.name == "EISDIR")
    }
}
