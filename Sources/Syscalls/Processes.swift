import ABI
import CDmirror
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// fork(2). 0 in the child. The caller must be single-threaded.
    public static func fork() throws(Errno) -> pid_t {
        try shim("fork", []) { dmirror_sys_fork() }
    }

    /// waitpid(2) for `pid`, blocking; how it ended. Retries on EINTR.
    public static func wait(_ pid: pid_t) throws(Errno) -> ExitStatus {
        var status: Int32 = 0
        _ = try call("waitpid", [String(pid)]) { waitpid(pid, &status, 0) }
        return ExitStatus(waitStatus: status)
    }

    /// waitpid(2) with WNOHANG: nil while `pid` still runs.
    public static func poll(_ pid: pid_t) throws(Errno) -> ExitStatus? {
        var status: Int32 = 0
        let got = try call("waitpid", [String(pid), "WNOHANG"]) { waitpid(pid, &status, WNOHANG) }
        return got == 0 ? nil : ExitStatus(waitStatus: status)
    }

    /// pidfd_open(2): a descriptor that polls readable once `pid` has exited (Linux 5.3).
    public static func pidfdOpen(_ pid: pid_t) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try shim("pidfd_open", [String(pid)]) { dmirror_sys_pidfd_open(pid) })
    }

    /// process_mrelease(2): reap the memory of the dying process behind `pidfd` (Linux 5.15).
    public static func processMrelease(_ pidfd: FileDescriptor) throws(Errno) {
        _ = try shim("process_mrelease", [String(pidfd.rawValue)]) { dmirror_sys_process_mrelease(pidfd.rawValue) }
    }

    /// kill(2); a negative `pid` signals a process group.
    public static func kill(_ pid: pid_t, _ signal: Signal) throws(Errno) {
        _ = try call("kill", [String(pid), signal.description]) { Glibc.kill(pid, signal.rawValue) }
    }

    /// setpgid(0, 0): the caller leads a new process group (so its whole group can be killed).
    public static func newProcessGroup() throws(Errno) {
        _ = try call("setpgid", ["0", "0"]) { setpgid(0, 0) }
    }

    /// fflush(NULL): stdio's buffers out before a fork, so no text is written twice.
    public static func flushStandardStreams() { fflush(nil) }

    /// getpid(2).
    public static func processID() -> pid_t { getpid() }

    /// _exit(2): no atexit handlers, no stdio flush (a forked child must not flush its parent's buffers).
    public static func exit(_ status: Int32) -> Never { _exit(status) }

    /// Restores the default action of `signal` and raises it: the process dies of it, as it would
    /// have without dmirror in the way.
    public static func die(of signal: Signal) -> Never {
        _ = Glibc.signal(signal.rawValue, SIG_DFL)
        _ = Glibc.raise(signal.rawValue)
        abort()
    }

    /// raise(3).
    public static func raise(_ signal: Signal) { _ = Glibc.raise(signal.rawValue) }

    /// signal(2) with a C handler (for the few signals a harness must forward).
    public static func setHandler(_ signal: Signal, _ handler: @convention(c) (Int32) -> Void) {
        _ = Glibc.signal(signal.rawValue, handler)
    }

    /// signal(2): ignore `signal` (SIGPIPE, so a closed stdout is an EPIPE the caller sees).
    public static func ignore(_ signal: Signal) {
        _ = Glibc.signal(signal.rawValue, SIG_IGN)
    }

    /// signal(2): the default action again (in a forked child).
    public static func restoreDefault(_ signal: Signal) {
        _ = Glibc.signal(signal.rawValue, SIG_DFL)
    }

    /// Unblocks every signal of the calling thread (a forked case starts with a clean mask).
    public static func unblockAllSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
    }

    /// setenv(3) in this process (a forked case's own environment).
    public static func setEnvironment(_ name: String, _ value: String, overwrite: Bool) {
        setenv(name, value, overwrite ? 1 : 0)
    }

    /// getenv(3).
    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
