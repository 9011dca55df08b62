import ABI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The seam for testing error paths without the real thing (the shape of
/// swift-system's Internals/Mocking.swift): while a recorder is installed on a
/// thread, every call that thread makes through `Sys` is recorded, and the
/// calls a test names fail with the errno it chose instead of reaching the kernel.
///
/// Outside a test nothing is installed and a call costs one relaxed atomic load.
public final class SyscallRecorder: @unchecked Sendable {
    /// One call: its name (`read`, `ioctl`, ...) and its arguments, as text.
    public struct Call: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public let arguments: [String]
        public var description: String { "\(name)(\(arguments.joined(separator: ", ")))" }
    }

    /// Every call recorded so far, in order.
    public private(set) var calls: [Call] = []
    private var failures: [String: (errno: Errno, remaining: Int?)] = [:]

    public init() {}

    /// The next `times` calls of `name` (every one when nil) fail with `errno`.
    public func fail(_ name: String, with errno: Errno, times: Int? = nil) {
        failures[name] = (errno, times)
    }

    /// Records the call; the errno to fail it with, if one is forced.
    func record(_ name: String, _ arguments: [String]) -> Errno? {
        calls.append(Call(name: name, arguments: arguments))
        guard let failure = failures[name] else { return nil }
        if let remaining = failure.remaining {
            failures[name] = remaining > 1 ? (failure.errno, remaining - 1) : nil
        }
        return failure.errno
    }

    /// Runs `body` with this recorder installed on the calling thread.
    public func recording<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let previous = pthread_getspecific(Self.key)
        pthread_setspecific(Self.key, Unmanaged.passUnretained(self).toOpaque())
        Self.installed.add(1, ordering: .sequentiallyConsistent)
        defer {
            Self.installed.subtract(1, ordering: .sequentiallyConsistent)
            pthread_setspecific(Self.key, previous)
        }
        return try body()
    }

    /// How many recorders are installed on any thread (0: mocking is off).
    static let installed = Atomic<Int>(0)

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The recorder of the calling thread.
    static var current: SyscallRecorder? {
        guard installed.load(ordering: .relaxed) != 0, let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<SyscallRecorder>.fromOpaque(raw).takeUnretainedValue()
    }
}

/// The forced errno for this call, if a recorder on this thread wants one.
@inline(__always)
func mocked(_ name: String, _ arguments: @autoclosure () -> [String]) -> Errno? {
    guard let recorder = SyscallRecorder.current else { return nil }
    return recorder.record(name, arguments())
}
