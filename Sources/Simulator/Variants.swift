// Driver and mm variants, each the shape of a real change HMM developers met,
// selectable in the configuration so the checkers can be shown to catch them.
// The stock model (no variant) is Linux 7.3's lib/test_hmm.c and mm/.

/// A bug pattern the simulator can reproduce on request.
public enum SimVariant: String, Sendable, CaseIterable, Hashable {
    /// The migrate-on-fault RFC's handler (HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV):
    /// do_fault_and_migrate() takes mmap_read_lock and then calls
    /// dmirror_range_fault(), which takes it again.
    case migrateOnFaultNestedLock = "migrate-on-fault-nested-lock"
    /// The later migrate-on-fault handler: one hmm_range_fault() walk with
    /// HMM_PFN_REQ_MIGRATE faults the range in and migrates it, under one mmap_read_lock.
    case migrateOnFault = "migrate-on-fault"
    /// dmirror_interval_invalidate() without the owner filter: the driver also
    /// acts on the MMU_NOTIFY_MIGRATE invalidations of its own migrations.
    case noOwnerFilter = "no-owner-filter"
    /// The driver commits hmm_range_fault()'s result to its page table without
    /// mmu_interval_read_retry().
    case noReadRetry = "no-read-retry"
    /// A driver that mirrors with a plain mmu_notifier and a device lock, which it
    /// holds across migrate_vma_setup() while its invalidate_range_start() takes it too.
    case plainNotifierDeviceLock = "plain-notifier-device-lock"
    /// mm before c2655835fd8c (5.12): when a non-blockable invalidate_range_start()
    /// fails with -EAGAIN, the notifiers that had started are never ended.
    case nonblockStartSkipsEnd = "nonblock-start-skips-end"

    /// What the variant stands for, one line.
    public var summary: String {
        switch self {
        case .migrateOnFaultNestedLock: "migrate-on-fault RFC handler: mmap_read_lock taken twice"
        case .migrateOnFault: "migrate-on-fault in one hmm_range_fault() walk (HMM_PFN_REQ_MIGRATE)"
        case .noOwnerFilter: "interval invalidate acts on the device's own MIGRATE invalidations"
        case .noReadRetry: "device page table updated without mmu_interval_read_retry()"
        case .plainNotifierDeviceLock: "plain mmu_notifier with a device lock held across migrate_vma_setup()"
        case .nonblockStartSkipsEnd: "a failed non-blockable invalidate_range_start() leaves started notifiers unended"
        }
    }
}
