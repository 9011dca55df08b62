import ABI
import MachineInterface

/// The simulated machine's fixed properties.
public struct SimConfiguration: Sendable {
    /// /sys/kernel/mm/transparent_hugepage/enabled.
    public enum THPMode: String, Sendable, CaseIterable {
        case always, madvise, never
    }

    /// PAGE_SIZE.
    public var pageSize: Int
    /// HPAGE_PMD_SIZE (hpage_pmd_size): a property of the simulated machine.
    public var pmdSize: Int
    /// PUD_SIZE.
    public var pudSize: Int
    /// The THP mode; the lab's real kernel uses madvise.
    public var thpEnabled: THPMode
    /// The default hugetlb page size ("Hugepagesize:").
    public var hugetlbPageSize: Int
    /// nr_hugepages at boot (the lab's guest boots with hugepages=4).
    public var hugetlbPoolPages: Int
    /// totalram_pages(): what vmalloc() will not exceed. The lab's guest has 4 GiB, of
    /// which the SPM ranges (memmap=) take 512 MiB.
    public var totalRAMPages: Int = (4096 - 512) << 8
    /// test_hmm loaded with spm_addr_dev0/1: /dev/hmm_dmirror2 and 3 exist.
    public var hasCoherentDevices: Bool
    /// CONFIG_GUP_TEST and debugfs.
    public var gupTestAvailable: Bool
    /// The userfaultfd syscall.
    public var userfaultfdAvailable: Bool
    /// The kernel version the simulator models: it decides the driver's and the mm's
    /// behaviour where they changed between releases.
    public var release: KernelVersion
    /// The dmirror ioctl numbering the simulated kernel speaks (the release's, unless forced).
    public var abi: ABIGeneration
    /// Seeds hmm_random().
    public var seed: UInt64
    /// How the kernel's tasks are interleaved.
    public var schedule: SchedulePolicy = .runToBlock
    /// Driver and mm variants that reproduce known bugs (none: the stock 7.3 model).
    public var variants: Set<SimVariant> = []
    /// Print each checker report on stderr when it is found, as a kernel logs a splat
    /// (off while exploring: the outcome carries the reports).
    public var printsReports = true
    /// What happens when every task waits or a livelock bound is hit, given the report;
    /// it must not return. Nil: the process exits with status 1.
    public var onStuck: (@Sendable (String) -> Never)?

    public init(pageSize: Int = 4096, pmdSize: Int = 2 << 20, pudSize: Int = 1 << 30,
                thpEnabled: THPMode = .madvise, hugetlbPageSize: Int = 2 << 20, hugetlbPoolPages: Int = 4,
                hasCoherentDevices: Bool = true, gupTestAvailable: Bool = true, userfaultfdAvailable: Bool = true,
                release: KernelVersion = SimConfiguration.newestRelease, abi: ABIGeneration? = nil,
                seed: UInt64 = 0x5EED) {
        self.pageSize = pageSize
        self.pmdSize = pmdSize
        self.pudSize = pudSize
        self.thpEnabled = thpEnabled
        self.hugetlbPageSize = hugetlbPageSize
        self.hugetlbPoolPages = hugetlbPoolPages
        self.hasCoherentDevices = hasCoherentDevices
        self.gupTestAvailable = gupTestAvailable
        self.userfaultfdAvailable = userfaultfdAvailable
        self.release = release
        self.abi = abi ?? ABIGeneration(release) ?? .newest
        self.seed = seed
    }

    /// The release the simulator models unless told otherwise: the lab's reference kernel.
    public static let newestRelease = KernelVersion(7, 3, 4)
}

/// One simulated system: physical memory (the zero pages, the hugetlb pool),
/// the test_hmm module's four devices, and the processes' mms.
///
/// `@unchecked Sendable`: mutable state (the mm list, the physical address
/// allocator, pids) is protected by `lock`; the devices lock themselves.
public final class SimKernel: @unchecked Sendable {
    public let configuration: SimConfiguration
    let pageShift: Int
    let pmdShift: Int
    let pudShift: Int
    /// ZERO_PAGE(0).
    let zeroFolio: Folio
    /// The huge zero folio.
    let hugeZeroFolio: Folio
    let hugetlbPool: HugetlbPool
    /// Whether this release migrates THPs to device memory whole (6.18 on): decided by the
    /// release modelled, not the ABI forced on it.
    let migratesDeviceTHP: Bool
    /// dmirror_devices[]: nil where the device does not exist.
    private(set) var devices: [DmirrorDevice?] = []

    private let lock = HostLock()
    private var mms: [WeakMM] = []
    /// The tasks and their interleaving.
    let scheduler: Scheduler
    /// What the protocol checkers found.
    let checkers: CheckerReports
    /// Page table walks so far, system-wide: the calls of walk_page_range() and
    /// walk_page_range_vma() the kernel would make (what the lab's kprobes count).
    /// Only the running task changes it.
    var pageWalks = 0
    /// Tasks waiting for a migration entry to go (migration_entry_wait()).
    let migrationWaiters: WaitQueue
    private var nextPid: Int32 = 1000
    private var randomState: UInt64
    /// request_free_mem_region(): fake physical addresses for private chunks.
    private var nextFreeRegion: UInt64 = 0x10_0000_0000

    /// spm_addr_dev0/spm_addr_dev1 (efi_fake_mem ranges, as in the lab).
    static let spmAddressDev0: UInt64 = 0x1_0000_0000
    static let spmAddressDev1: UInt64 = 0x1_4000_0000

    private struct WeakMM { weak var mm: MMStruct? }
    private struct WeakMirror { weak var dmirror: Dmirror? }
    private var mirrors: [WeakMirror] = []

    public init(configuration: SimConfiguration = .init()) {
        self.configuration = configuration
        randomState = configuration.seed
        checkers = CheckerReports()
        checkers.printing = configuration.printsReports
        scheduler = Scheduler(policy: configuration.schedule, reports: checkers)
        if let onStuck = configuration.onStuck { scheduler.onDeadlock = onStuck }
        migrationWaiters = WaitQueue(scheduler, "migration entry")
        pageShift = configuration.pageSize.trailingZeroBitCount
        pmdShift = configuration.pmdSize.trailingZeroBitCount
        pudShift = configuration.pudSize.trailingZeroBitCount
        zeroFolio = Folio(kind: .zero, order: 0, pageSize: configuration.pageSize)
        hugeZeroFolio = Folio(kind: .hugeZero, order: pmdShift - pageShift, pageSize: configuration.pageSize)
        hugetlbPool = HugetlbPool(pages: configuration.hugetlbPoolPages, pageSize: configuration.pageSize,
                                  hugePageSize: configuration.hugetlbPageSize)
        migratesDeviceTHP = ABIGeneration(configuration.release)?.migratesDeviceTHP ?? true
        // hmm_dmirror_init()
        var devs: [DmirrorDevice?] = [
            DmirrorDevice(kernel: self, minor: 0, type: .devicePrivate),
            DmirrorDevice(kernel: self, minor: 1, type: .devicePrivate),
        ]
        if configuration.hasCoherentDevices {
            devs.append(DmirrorDevice(kernel: self, minor: 2, type: .deviceCoherent))
            devs.append(DmirrorDevice(kernel: self, minor: 3, type: .deviceCoherent))
        } else {
            devs.append(contentsOf: [nil, nil])
        }
        devices = devs
    }

    /// A new process with its own mm_struct.
    public func spawnProcess() -> any Machine {
        makeProcess(mm: MMStruct(kernel: self), isChild: false)
    }

    func makeProcess(mm: MMStruct, isChild: Bool) -> SimProcess {
        let pid = lock.withLock { () -> Int32 in
            nextPid += 1
            mms.removeAll { $0.mm == nil }
            mms.append(WeakMM(mm: mm))
            return nextPid
        }
        return SimProcess(kernel: self, mm: mm, pid: pid, isChild: isChild)
    }

    /// A dmirror file was opened (the introspection walks every open one).
    func register(_ dmirror: Dmirror) {
        lock.withLock {
            mirrors.removeAll { $0.dmirror == nil }
            mirrors.append(WeakMirror(dmirror: dmirror))
        }
    }

    /// Every dmirror file still open.
    func openMirrors() -> [Dmirror] {
        lock.withLock { mirrors.compactMap(\.dmirror).filter { !$0.released } }
    }

    /// Every mm still alive (for migrate_device_range(), which finds mappings through rmap).
    func liveMMs() -> [MMStruct] {
        lock.withLock { mms.compactMap(\.mm) }
    }

    /// folio_alloc(): a new system folio.
    func allocFolio(_ kind: Folio.Kind, order: Int, zeroed: Bool = true) -> Folio {
        Folio(kind: kind, order: order, pageSize: configuration.pageSize, zeroed: zeroed)
    }

    /// hmm_random(): a generator seeded by the configuration, so a run repeats exactly.
    func random() -> UInt32 {
        lock.withLock {
            // SplitMix64.
            randomState &+= 0x9E37_79B9_7F4A_7C15
            var z = randomState
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt32(truncatingIfNeeded: z ^ (z >> 31))
        }
    }

    /// jiffies in milliseconds: the scheduler's steps, one per microsecond.
    var milliseconds: Int { scheduler.steps / 1000 }

    /// Whether a bug variant is on.
    func has(_ variant: SimVariant) -> Bool { configuration.variants.contains(variant) }

    func requestFreeMemRegion(_ size: UInt64) -> UInt64 {
        lock.withLock {
            let base = nextFreeRegion
            nextFreeRegion += size
            return base
        }
    }
}
