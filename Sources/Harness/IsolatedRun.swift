import ABI
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One piece of work in a process of its own, the way each case runs: fork(), a
/// new process group, the work writes its answer to a pipe and exits. A child
/// that crashes, deadlocks or overstays its timeout costs one answer, never
/// the caller (schedule exploration runs thousands of these).
public enum IsolatedRun {
    /// What the child wrote and how it ended.
    public struct Answer: Sendable {
        public let output: [UInt8]
        public let status: ExitStatus
        /// The timeout ran out and the child's group was killed.
        public let timedOut: Bool
    }

    /// Runs `body` in a child process, which writes its answer to the descriptor it
    /// is given and must exit. The caller must be single-threaded (fork()).
    public static func run(timeoutNanoseconds: UInt64, _ body: (FileDescriptor) -> Never) throws(Errno) -> Answer {
        let (readEnd, writeEnd) = try Sys.pipe()
        let pid: pid_t
        do {
            pid = try Sys.fork()
        } catch {
            try? Sys.close(readEnd)
            try? Sys.close(writeEnd)
            throw error
        }
        if pid == 0 {
            try? Sys.newProcessGroup()
            try? Sys.close(readEnd)
            body(writeEnd)
        }
        try? Sys.close(writeEnd)
        defer { try? Sys.close(readEnd) }
        let slot = CaseLauncher.track(pid)
        defer { CaseLauncher.untrack(slot) }
        var output: [UInt8] = []
        var timedOut = false
        let deadline = Sys.monotonicNanoseconds() + timeoutNanoseconds
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { chunk.deallocate() }
        reading: while true {
            let now = Sys.monotonicNanoseconds()
            if now >= deadline {
                timedOut = true
                break
            }
            var fds = [pollfd(fd: readEnd.rawValue, events: Int16(POLLIN), revents: 0)]
            let wait = Int32(min((deadline - now) / 1_000_000 + 1, 1000))
            guard try Sys.poll(&fds, timeoutMilliseconds: wait) > 0 else { continue }
            switch Result(catching: { () throws(Errno) in try Sys.read(readEnd, into: chunk) }) {
            case .success(0): break reading
            case .success(let n): output += chunk.prefix(n)
            case .failure(.EINTR), .failure(.EAGAIN): continue
            case .failure: break reading
            }
        }
        // The whole group: a child the work forked dies with it.
        try? Sys.kill(-pid, .kill)
        let status = try Sys.wait(pid)
        return Answer(output: output, status: status, timedOut: timedOut)
    }
}
