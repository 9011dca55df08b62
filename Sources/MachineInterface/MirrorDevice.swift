import ABI

/// An open dmirror device with typed commands.
///
/// Wraps a `DmirrorFile` (real or simulated) and the ABI generation that maps
/// commands to request numbers. Every call names the ioctl behind it.
public struct MirrorDevice: Sendable {
    public let file: any DmirrorFile
    public let abi: ABIGeneration

    public init(file: any DmirrorFile, abi: ABIGeneration) {
        self.file = file
        self.abi = abi
    }

    public var unit: Int { file.unit }

    /// Issues `command` with the raw fields of `struct hmm_dmirror_cmd`.
    /// `ptr` is the user buffer address (data, or one byte per page for SNAPSHOT).
    /// (hmm-tests.c retries on EINTR; the file's ioctl already does.)
    @discardableResult
    public func perform(_ command: DmirrorCommand, addr: UInt64, ptr: UInt64, npages: UInt64) throws(DmirrorError) -> CommandResult {
        // A proposed command goes out under its proposed number; a driver without it says EINVAL.
        guard let request = abi.request(for: command) ?? ABIGeneration.proposedRequest(for: command) else {
            throw .unsupported(command, abi)
        }
        var cmd = DmirrorCmd(addr: addr, ptr: ptr, npages: npages)
        switch file.ioctl(request: request, &cmd) {
        case .success:
            return CommandResult(cpages: cmd.cpages, faults: cmd.faults)
        case .failure(let errno):
            throw .failed(command, errno)
        }
    }

    /// HMM_DMIRROR_READ into `buffer` (at least `npages` pages long).
    public func read(_ addr: UInt64, npages: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DmirrorError) -> CommandResult {
        try perform(.read, addr: addr, ptr: Self.address(buffer), npages: UInt64(npages))
    }

    /// HMM_DMIRROR_WRITE from `buffer`.
    public func write(_ addr: UInt64, npages: Int, from buffer: UnsafeRawBufferPointer) throws(DmirrorError) -> CommandResult {
        try perform(.write, addr: addr, ptr: Self.address(buffer), npages: UInt64(npages))
    }

    /// HMM_DMIRROR_MIGRATE_TO_DEV; the range is read back into `buffer`.
    public func migrateToDevice(_ addr: UInt64, npages: Int, readBackInto buffer: UnsafeMutableRawBufferPointer) throws(DmirrorError) -> CommandResult {
        try perform(.migrateToDevice, addr: addr, ptr: Self.address(buffer), npages: UInt64(npages))
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS; cpages is the number of pages selected and migrated.
    public func migrateToSystem(_ addr: UInt64, npages: Int) throws(DmirrorError) -> CommandResult {
        try perform(.migrateToSystem, addr: addr, ptr: 0, npages: UInt64(npages))
    }

    /// HMM_DMIRROR_SNAPSHOT: one entry per page, never faulting.
    public func snapshot(_ addr: UInt64, npages: Int) throws(DmirrorError) -> [SnapshotEntry] {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(npages, 1), alignment: 8)
        defer { bytes.deallocate() }
        let result = try perform(.snapshot, addr: addr, ptr: Self.address(bytes), npages: UInt64(npages))
        return bytes.prefix(Int(result.cpages)).map(SnapshotEntry.init(rawValue:))
    }

    /// HMM_DMIRROR_EXCLUSIVE; the range is read back into `buffer`.
    public func exclusive(_ addr: UInt64, npages: Int, readBackInto buffer: UnsafeMutableRawBufferPointer) throws(DmirrorError) -> CommandResult {
        try perform(.exclusive, addr: addr, ptr: Self.address(buffer), npages: UInt64(npages))
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE: throws EPERM while a page is still mapped atomic.
    public func checkExclusive(_ addr: UInt64, npages: Int) throws(DmirrorError) {
        try perform(.checkExclusive, addr: addr, ptr: 0, npages: UInt64(npages))
    }

    /// HMM_DMIRROR_RELEASE: evict the whole device to system memory and free its chunks.
    /// The prologue still wants an aligned `addr` and non-zero `npages`.
    public func release(_ addr: UInt64 = 0, npages: Int = 1) throws(DmirrorError) {
        try perform(.release, addr: addr, ptr: 0, npages: UInt64(npages))
    }

    /// HMM_DMIRROR_FLAGS: sets this file's flag word (carried in npages; 0 is rejected with EINVAL).
    public func setFlags(_ flags: DmirrorFlags) throws(DmirrorError) {
        try perform(.flags, addr: 0, ptr: 0, npages: flags.rawValue)
    }

    /// HMM_DMIRROR_READ_UNLOCKED: READ whose fault path may drop mmap_lock (userfaultfd).
    public func readUnlocked(_ addr: UInt64, npages: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DmirrorError) -> CommandResult {
        try perform(.readUnlocked, addr: addr, ptr: Self.address(buffer), npages: UInt64(npages))
    }

    /// close(2) of the device file.
    public func close() throws(Errno) { try file.close() }

    static func address(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        UInt64(UInt(bitPattern: buffer.baseAddress))
    }

    static func address(_ buffer: UnsafeMutableRawBufferPointer) -> UInt64 {
        UInt64(UInt(bitPattern: buffer.baseAddress))
    }
}
