import CDmirror

/// The raw 40-byte argument of every dmirror ioctl (`struct hmm_dmirror_cmd`).
public typealias DmirrorCmd = dmirror_cmd

extension DmirrorCmd {
    /// The in fields; cpages and faults start at 0 (the driver zeroes them too).
    public init(addr: UInt64, ptr: UInt64, npages: UInt64) {
        self.init(addr: addr, ptr: ptr, npages: npages, cpages: 0, faults: 0)
    }
}

/// Bits of the HMM_DMIRROR_FLAGS word.
public struct DmirrorFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// HMM_DMIRROR_FLAG_FAIL_ALLOC: the next device- or system-side allocation fails once.
    public static let failAlloc = DmirrorFlags(rawValue: DMIRROR_FLAG_FAIL_ALLOC)
}
