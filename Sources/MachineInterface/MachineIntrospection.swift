import ABI

/// What a model of the kernel can say about its own state that the real
/// kernel does not show: the fuzzer's invariant checks read it after every
/// operation. Only the simulator's processes implement it.
public protocol MachineIntrospection: AnyObject {
    /// The bytes a CPU load of [address, address + count) would return now,
    /// read without faulting, migrating or changing anything: system pages as
    /// they are, device-private pages from their device memory, unpopulated
    /// anonymous memory as zeros, file pages from the page cache. Nil when the
    /// load would end in SIGSEGV or SIGBUS.
    func peek(_ address: UInt64, count: Int) -> [UInt8]?

    /// Violations of the kernel's invariants in the current state, one line each:
    /// a device page table entry left stale (it maps a page the CPU no longer
    /// maps there, or with more access than the CPU has), a folio whose map
    /// count disagrees with the page tables, an invalidation still in flight.
    func invariantViolations() -> [String]

    /// Device pages still allocated on each device (minor → pages). After every
    /// file of a device is closed, it must hold none.
    func allocatedDevicePages() -> [Int: Int]

    /// What the model's protocol checkers (lockdep, the mmu notifier discipline,
    /// the deadlock and livelock bounds) have reported so far, in order.
    func checkerReports() -> [CheckerReport]

    /// Every scheduling decision of the model's tasks so far (where more than one
    /// could run), in order: replaying the chosen indices repeats the run.
    func scheduleDecisions() -> [ScheduleDecision]
}

/// One report of the simulator's protocol checkers: its kind (e.g. "recursive
/// locking", "stale device mapping") and its text, in the shape of the kernel
/// splat it stands for.
public struct CheckerReport: Sendable, Hashable, CustomStringConvertible {
    public let kind: String
    public let text: String

    public init(kind: String, text: String) {
        self.kind = kind
        self.text = text
    }

    /// The first line of the text, which names what happened.
    public var headline: String { String(text.prefix { $0 != "\n" }) }

    public var description: String { "\(kind): \(headline)" }
}
