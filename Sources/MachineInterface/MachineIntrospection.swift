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
}
