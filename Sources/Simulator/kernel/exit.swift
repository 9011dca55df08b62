import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

// kernel/exit.c and wait: a forked simulated child, how it ends, and waitpid().

/// A forked simulated child. It is not a real process: its body runs, on its
/// own host thread, when the parent waits for it; a kill before that means it
/// never runs. `@unchecked Sendable`: state under `lock`.
final class SimChild: ChildProcess, @unchecked Sendable {
    let process: SimProcess
    private let lock = SimMutex()
    private var body: ((any Machine) throws -> Int32)?
    private var status: ExitStatus?

    nonisolated(unsafe) private static var currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The child whose body runs on this thread.
    static var current: SimChild? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<SimChild>.fromOpaque(raw).takeUnretainedValue()
    }

    init(process: SimProcess, body: @escaping (any Machine) throws -> Int32) {
        self.process = process
        self.body = body
    }

    var pid: Int32 { process.pid }

    func kill(_ signal: Signal) throws(Errno) {
        lock.withLock {
            if status == nil && body != nil {
                body = nil
                status = .signaled(signal)
                process.exit()
            }
        }
    }

    func wait() throws(Errno) -> ExitStatus {
        let pending = lock.withLock { () -> ((any Machine) throws -> Int32)? in
            let b = body
            body = nil
            return b
        }
        if let pending {
            final class Box: @unchecked Sendable {
                let run: () -> Void
                init(_ run: @escaping () -> Void) { self.run = run }
            }
            let box = Box { [self] in
                pthread_setspecific(SimChild.currentKey, Unmanaged.passUnretained(self).toOpaque())
                let code: Int32
                do { code = try pending(process) } catch { code = 1 }
                // do_exit((code & 0xff) << 8): waitpid sees the low byte.
                finish(.exited(code & 0xff))
            }
            let thread = try SimThread { box.run() }
            thread.join()
        }
        return lock.withLock { status ?? .exited(0) }
    }

    private func finish(_ result: ExitStatus) {
        lock.withLock { if status == nil { status = result } }
        process.exit()
    }

    /// A fatal signal in the child: it ends here, on its own thread.
    func terminate(by signal: Signal) -> Never {
        finish(.signaled(signal))
        pthread_exit(nil)
    }
}
