import DmirrorDevice
#if canImport(Glibc)
import Glibc
#endif

/// A real POSIX thread of the test process (pthread_create/pthread_join).
///
/// Both backends use real threads: the simulator is thread-safe the way the
/// kernel is (mmap_lock, the dmirror mutex), so a race such as anon_teardown's
/// munmap against a device READ happens for real in either backend.
public final class HostThread: @unchecked Sendable {
    private var thread: pthread_t
    private final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }

    /// pthread_create(3).
    public init(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        let box = Unmanaged.passRetained(Box(body))
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw Errno(rc)
        }
        thread = handle
    }

    /// pthread_join(3).
    public func join() {
        pthread_join(thread, nil)
    }
}
