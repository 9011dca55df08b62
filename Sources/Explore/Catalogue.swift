import ABI
import MachineInterface

/// The concurrent scenarios `dmirror explore` knows: races of device commands
/// with munmap, mprotect, madvise(DONTNEED) and CPU writes, fork with COW of
/// device-private pages, the OOM reaper against a fault, and the bug patterns
/// HMM developers met, each with what exploring it must find under the stock
/// model and under the variant that reproduces the bug.
public enum Catalogue {
    public static let all: [ConcurrentScenario] = [
        readVersusMunmap, writeVersusMprotect, migrateVersusDontNeed, migrateVersusCPUWrite,
        snapshotVersusMigrateToSystem, forkCOWOfDevicePages, migrateVersusRead, reaperVersusFault,
        migrateOnFault,
        // KernelStress.swift: sized for the real driver's timing
        readRetryStress,
    ]

    public static func named(_ name: String) -> ConcurrentScenario? { all.first { $0.name == name } }

    /// A device read of four pages while another thread unmaps half of them: the
    /// retry on the notifier sequence is what keeps the device from mapping the
    /// unmapped pages. Without it, a stale device mapping survives the munmap.
    static let readVersusMunmap = ConcurrentScenario(
        name: "read-munmap",
        summary: "HMM_DMIRROR_READ of 4 pages races munmap of the last 2",
        pages: 4,
        tasks: [
            .init("T1") { $0.command(.read, 0, 4) },
            .init("T2") { $0.munmap(2, 2) },
        ],
        final: { $0.load(0, 2) },
        expectations: [
            .init(because: "the stock driver commits a walk only when mmu_interval_read_retry() says it still holds"),
            .init(variants: ["no-read-retry"], finding: "stale device mapping",
                  because: "committing without read_retry maps pages an munmap already invalidated"),
        ])

    /// A device write while another thread makes the range read-only: the device
    /// must not keep write access the CPU lost.
    static let writeVersusMprotect = ConcurrentScenario(
        name: "write-mprotect",
        summary: "HMM_DMIRROR_WRITE of 4 pages races mprotect(PROT_READ)",
        pages: 4,
        tasks: [
            .init("T1") { $0.command(.write, 0, 4, pattern: 500_000) },
            .init("T2") { $0.mprotect(0, 4, .read) },
        ],
        final: {
            $0.load(0, 4)
            $0.command(.snapshot, 0, 4)
        },
        expectations: [
            .init(because: "the write's walk is retried after the PROTECTION_VMA invalidation"),
            .init(variants: ["no-read-retry"], finding: "stale device",
                  because: "without read_retry the device keeps write access mprotect removed"),
        ])

    /// Migration to the device while another thread discards half the range.
    static let migrateVersusDontNeed = ConcurrentScenario(
        name: "migrate-dontneed",
        summary: "HMM_DMIRROR_MIGRATE_TO_DEV of 4 pages races madvise(MADV_DONTNEED) of the first 2",
        pages: 4,
        tasks: [
            .init("T1") { $0.command(.migrateToDevice, 0, 4) },
            .init("T2") { $0.dontNeed(0, 2) },
        ],
        final: {
            $0.command(.snapshot, 0, 4)
            $0.command(.read, 0, 4)
            $0.load(0, 4)
        },
        expectations: [
            .init(finding: "stale device mapping",
                  because: "test_hmm finding: a DONTNEED between migrate_vma_setup() and dmirror_migrate_finalize_and_map() "
                      + "zaps the migration entries (its CLEAR invalidation finds nothing to erase), the migration goes on, "
                      + "the driver maps the new device pages and migrate_vma_finalize() frees them unmapped"),
        ])

    /// Migration to the device while another thread writes one of the pages.
    static let migrateVersusCPUWrite = ConcurrentScenario(
        name: "migrate-cpu-write",
        summary: "HMM_DMIRROR_MIGRATE_TO_DEV of 4 pages races a CPU write of page 1",
        pages: 4,
        tasks: [
            .init("T1") { $0.command(.migrateToDevice, 0, 4) },
            .init("T2") { $0.store(1, 700_000) },
        ],
        final: {
            $0.command(.snapshot, 0, 4)
            $0.load(0, 4)
        },
        expectations: [.init(because: "the CPU write waits on the migration entry, then faults the page back")])

    /// A snapshot of device pages while another thread migrates them home.
    static let snapshotVersusMigrateToSystem = ConcurrentScenario(
        name: "snapshot-migrate-to-sys",
        summary: "HMM_DMIRROR_SNAPSHOT of 4 device pages races HMM_DMIRROR_MIGRATE_TO_SYS",
        pages: 4,
        setup: {
            $0.fill()
            $0.command(.migrateToDevice, 0, 4)
        },
        tasks: [
            .init("T1") { $0.command(.snapshot, 0, 4) },
            .init("T2") { $0.command(.migrateToSystem, 0, 4) },
        ],
        final: {
            $0.command(.snapshot, 0, 4)
            $0.load(0, 4)
        },
        expectations: [.init(because: "the snapshot's walk retries past the migration")])

    /// fork() after migration: the child writes a device-private page (COW, which
    /// brings it home first) while the parent's thread reads the range through the
    /// device.
    static let forkCOWOfDevicePages = ConcurrentScenario(
        name: "fork-cow-device",
        summary: "fork with 2 device-private pages: the child writes page 0 while the parent's device reads both",
        pages: 2,
        setup: {
            $0.fill()
            $0.command(.migrateToDevice, 0, 2)
        },
        tasks: [
            .init("child", .process) {
                $0.store(0, 800_000)
                $0.load(0, 2)
            },
            .init("T1") { $0.command(.read, 0, 2) },
        ],
        final: {
            $0.load(0, 2)
            $0.command(.snapshot, 0, 2)
        },
        expectations: [
            .init(finding: "kernel oops",
                  because: "test_hmm finding (it oopses 7.3.4 in the lab): fork's invalidation erases the parent's "
                      + "mirror entries, the READ's hmm_range_fault() returns the pages still device-private, "
                      + "dmirror_do_fault() stores those struct pages rather than their BACKING_PAGE(), and "
                      + "dmirror_do_read() copies through their direct-map address; where the READ runs after the "
                      + "child's write brought page 0 home, the child's COW copy never shows through the parent's mirror"),
        ])

    /// Migration to the device while another thread reads the range through the
    /// device. The plain-notifier driver holds its device lock across
    /// migrate_vma_setup(), whose invalidation takes the same lock.
    static let migrateVersusRead = ConcurrentScenario(
        name: "migrate-read",
        summary: "HMM_DMIRROR_MIGRATE_TO_DEV of 4 pages races HMM_DMIRROR_READ of the same pages",
        pages: 4,
        tasks: [
            .init("T1") { $0.command(.migrateToDevice, 0, 4) },
            .init("T2") { $0.command(.read, 0, 4) },
        ],
        final: { $0.load(0, 4) },
        expectations: [
            .init(finding: "kernel oops",
                  because: "test_hmm finding (it oopses 7.3.4 in the lab): the interval notifier's owner filter lets "
                      + "the driver's own migration through, but a READ that walks after the migration gets this "
                      + "device's device-private PFNs from hmm_range_fault(), stores those struct pages in its page "
                      + "table and dmirror_do_read() copies through their direct-map address"),
            .init(variants: ["plain-notifier-device-lock"], finding: "deadlock",
                  because: "the device lock is held across migrate_vma_setup(), whose invalidation takes it again"),
        ])

    /// The OOM reaper (process_mrelease) against a dying child that is in the
    /// middle of device reads: its non-blocking invalidations meet the driver's lock.
    static let reaperVersusFault = ConcurrentScenario(
        name: "oom-reap",
        summary: "process_mrelease() of a killed child that reads 4 pages through its own device",
        pages: 4,
        devices: [],
        setup: { $0.fill() },
        tasks: [
            .init("child", .process) {
                $0.openDevice(0)
                $0.command(.read, 0, 4)
                $0.command(.read, 0, 4)
            },
            .init("T1") {
                $0.kill("child")
                $0.releaseMemory("child")
            },
        ],
        final: { _ in },
        expectations: [
            .init(because: "the interval notifier ends what it started when a non-blockable start fails"),
            .init(variants: ["plain-notifier-device-lock"],
                  because: "since c2655835fd8c every plain notifier with an end gets it after a refused start"),
            .init(variants: ["plain-notifier-device-lock", "nonblock-start-skips-end"], finding: "no _end will follow",
                  because: "before c2655835fd8c the counter's start is never ended when the lock notifier refuses"),
        ])

    /// The migrate-on-fault series' command while another thread reads through the
    /// device. Pages 0 and 1 are left unwritten (0 not faulted in, 1 the zero page),
    /// as in the series' selftest.
    static let migrateOnFault = ConcurrentScenario(
        name: "migrate-on-fault",
        summary: "HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV (proposed) of 4 pages, 2 never written, races HMM_DMIRROR_READ",
        pages: 4,
        runsOnKernel: false,
        setup: {
            $0.fill(pages: [2, 3])
            $0.load(1)
        },
        tasks: [
            .init("T1") { $0.command(.migrateOnFaultToDevice, 0, 4) },
            .init("T2") { $0.command(.read, 2, 2) },
        ],
        final: { $0.load(0, 4) },
        expectations: [
            .init(because: "no released driver has the command: EINVAL"),
            .init(variants: ["migrate-on-fault"], tolerating: ["kernel oops"],
                  because: "with the owner filter the walk's own MIGRATE invalidation is ignored (a READ that faults "
                      + "after the migration meets the stock driver's oops, as in migrate-read)"),
            .init(variants: ["migrate-on-fault", "no-owner-filter"], finding: "self-invalidation livelock",
                  because: "without the owner filter every migrating walk invalidates itself"),
            .init(variants: ["migrate-on-fault-nested-lock"], finding: "possible recursive locking",
                  because: "the RFC's handler takes mmap_read_lock and calls dmirror_range_fault(), which takes it again"),
        ])
}
