/// The commands of the test_hmm driver, one per ioctl in lib/test_hmm_uapi.h.
///
/// The request number a command has depends on the kernel's ABI generation
/// (see `ABIGeneration`); the command itself is stable.
public enum DmirrorCommand: String, CaseIterable, Sendable, CustomStringConvertible {
    /// HMM_DMIRROR_READ: the device reads `npages` at `addr` into `ptr`, faulting them in.
    case read
    /// HMM_DMIRROR_WRITE: the device writes `ptr` into `npages` at `addr`, faulting for write.
    case write
    /// HMM_DMIRROR_MIGRATE_TO_DEV (HMM_DMIRROR_MIGRATE before v6.0): migrate_vma to device memory, then read back.
    case migrateToDevice
    /// HMM_DMIRROR_MIGRATE_TO_SYS: migrate this device's pages in the range back to system memory.
    case migrateToSystem
    /// HMM_DMIRROR_SNAPSHOT: one byte per page describing the CPU mapping, without faulting.
    case snapshot
    /// HMM_DMIRROR_EXCLUSIVE: make_device_exclusive() on each page, then read back.
    case exclusive
    /// HMM_DMIRROR_CHECK_EXCLUSIVE: EPERM while any page is still mapped exclusive (atomic).
    case checkExclusive
    /// HMM_DMIRROR_RELEASE: evict every page of the device to system memory and free its chunks.
    case release
    /// HMM_DMIRROR_FLAGS: set the per-file flag word (passed in `npages`).
    case flags
    /// HMM_DMIRROR_READ_UNLOCKED: READ through hmm_range_fault_unlockable(), which may drop mmap_lock.
    case readUnlocked
    /// HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV, proposed by the migrate-on-fault series and in
    /// no release: fault the range in and migrate it to the device in one walk
    /// (HMM_PFN_REQ_MIGRATE), then read it back like MIGRATE_TO_DEV.
    case migrateOnFaultToDevice

    /// The uapi macro's name, as kernel developers know it.
    public var kernelName: String {
        switch self {
        case .read: "HMM_DMIRROR_READ"
        case .write: "HMM_DMIRROR_WRITE"
        case .migrateToDevice: "HMM_DMIRROR_MIGRATE_TO_DEV"
        case .migrateToSystem: "HMM_DMIRROR_MIGRATE_TO_SYS"
        case .snapshot: "HMM_DMIRROR_SNAPSHOT"
        case .exclusive: "HMM_DMIRROR_EXCLUSIVE"
        case .checkExclusive: "HMM_DMIRROR_CHECK_EXCLUSIVE"
        case .release: "HMM_DMIRROR_RELEASE"
        case .flags: "HMM_DMIRROR_FLAGS"
        case .readUnlocked: "HMM_DMIRROR_READ_UNLOCKED"
        case .migrateOnFaultToDevice: "HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV"
        }
    }

    /// A command of a patch series under review, in no kernel release.
    public var isProposed: Bool { self == .migrateOnFaultToDevice }

    public var description: String { kernelName }
}
