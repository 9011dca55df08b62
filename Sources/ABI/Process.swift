import CDmirror

/// A signal number (signal.h).
public struct Signal: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let kill = Signal(rawValue: SIGKILL)
    public static let segv = Signal(rawValue: SIGSEGV)
    public static let bus = Signal(rawValue: SIGBUS)
    public static let abort = Signal(rawValue: SIGABRT)
    public static let term = Signal(rawValue: SIGTERM)
    public static let interrupt = Signal(rawValue: SIGINT)
    public static let hangup = Signal(rawValue: SIGHUP)
    public static let pipe = Signal(rawValue: SIGPIPE)

    /// "SIGKILL", or "signal N".
    public var description: String {
        switch self {
        case .kill: "SIGKILL"
        case .segv: "SIGSEGV"
        case .bus: "SIGBUS"
        case .abort: "SIGABRT"
        case .term: "SIGTERM"
        case .interrupt: "SIGINT"
        case .hangup: "SIGHUP"
        case .pipe: "SIGPIPE"
        default: "signal \(rawValue)"
        }
    }
}

/// How a process ended, as waitpid(2) reports it.
public enum ExitStatus: Hashable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Signal)

    /// Decodes a wait status word (WIFEXITED/WEXITSTATUS/WTERMSIG): the one place that knows its layout.
    public init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(Signal(rawValue: signal))
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by \(signal)"
        }
    }
}

/// /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
public enum Pagemap {
    /// PM_PRESENT, bit 63.
    public static let present: UInt64 = 1 << 63
    /// PM_SWAP, bit 62 (also set for device-private and migration entries).
    public static let swap: UInt64 = 1 << 62
    /// PM_FILE (file page or shared anonymous), bit 61.
    public static let file: UInt64 = 1 << 61
    /// PM_MMAP_EXCLUSIVE (mapped exactly once), bit 56.
    public static let exclusive: UInt64 = 1 << 56
}

/// gup_test's operations (mm/gup_test.h).
public struct GupTestOperation: RawRepresentable, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// GUP_FAST_BENCHMARK: get_user_pages_fast().
    public static let gupFastBenchmark = GupTestOperation(rawValue: Int32(DMIRROR_GUP_FAST_BENCHMARK))
    /// PIN_FAST_BENCHMARK: pin_user_pages_fast().
    public static let pinFastBenchmark = GupTestOperation(rawValue: Int32(DMIRROR_PIN_FAST_BENCHMARK))
    /// PIN_LONGTERM_BENCHMARK: pin_user_pages(FOLL_LONGTERM).
    public static let pinLongtermBenchmark = GupTestOperation(rawValue: Int32(DMIRROR_PIN_LONGTERM_BENCHMARK))
    /// GUP_BASIC_TEST: get_user_pages().
    public static let gupBasicTest = GupTestOperation(rawValue: Int32(DMIRROR_GUP_BASIC_TEST))
}

/// FOLL_* flags the suite passes to gup_test (hmm-tests.c copies them locally; they are kernel-internal).
public struct GupFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let write = GupFlags(rawValue: UInt32(DMIRROR_FOLL_WRITE))
    public static let longterm = GupFlags(rawValue: UInt32(DMIRROR_FOLL_LONGTERM))

    /// The first kernel whose FOLL_* values are the enum of linux/mm_types.h (v6.2, where
    /// FOLL_LONGTERM moved from 0x10000 to 0x100); the values above are those.
    public static let enumValuesSince = KernelVersion(6, 2)

    /// The gup_flags word to hand gup_test on `kernel`. The bits are kernel-internal, so they
    /// follow the running kernel: on 6.1, 0x100 is FOLL_HWPOISON and gup_test warns on it.
    /// Nil `kernel` (unknown) means the newest values.
    public func kernelValue(on kernel: KernelVersion?) -> UInt32 {
        guard let kernel, kernel < GupFlags.enumValuesSince, contains(.longterm) else { return rawValue }
        return rawValue & ~GupFlags.longterm.rawValue | UInt32(DMIRROR_FOLL_LONGTERM_PRE_6_2)
    }
}
