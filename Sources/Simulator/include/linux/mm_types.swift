/// vm_flags_t bits the simulator uses (names as in include/linux/mm.h).
struct VMFlags: OptionSet, Sendable, Hashable {
    let rawValue: UInt64
    static let read = VMFlags(rawValue: 1 << 0)         // VM_READ
    static let write = VMFlags(rawValue: 1 << 1)        // VM_WRITE
    static let exec = VMFlags(rawValue: 1 << 2)         // VM_EXEC
    static let shared = VMFlags(rawValue: 1 << 3)       // VM_SHARED
    static let mayWrite = VMFlags(rawValue: 1 << 5)     // VM_MAYWRITE
    static let uffdMissing = VMFlags(rawValue: 1 << 9)  // VM_UFFD_MISSING
    static let io = VMFlags(rawValue: 1 << 14)          // VM_IO
    static let hugetlb = VMFlags(rawValue: 1 << 22)     // VM_HUGETLB
    static let mixedmap = VMFlags(rawValue: 1 << 28)    // VM_MIXEDMAP
    static let hugepage = VMFlags(rawValue: 1 << 29)    // VM_HUGEPAGE
    static let nohugepage = VMFlags(rawValue: 1 << 30)  // VM_NOHUGEPAGE
    static let pfnmap = VMFlags(rawValue: 1 << 10)      // VM_PFNMAP
    static let dontexpand = VMFlags(rawValue: 1 << 18)  // VM_DONTEXPAND

    /// VM_SPECIAL: mappings migrate_vma_setup(), merging and khugepaged leave alone.
    static let special: VMFlags = [.io, .dontexpand, .pfnmap, .mixedmap]
}

/// struct vm_area_struct.
///
/// `@unchecked Sendable`: fields change only under the mm's mmap_lock held for write.
final class VMArea: @unchecked Sendable {
    var start: UInt64
    var end: UInt64
    var flags: VMFlags
    /// vm_file: the shmem inode for file and shared-anonymous mappings, nil for private anonymous memory.
    var file: ShmemInode?
    /// vm_pgoff in pages (file mappings).
    var pgoff: UInt64
    /// The dmirror device mapped by dmirror_fops_mmap (vm_insert_page mapping).
    var isDeviceMapping: Bool
    /// vm_file of a hugetlb VMA: the hugetlbfs inode (hugetlb_file_setup() makes one for
    /// MAP_HUGETLB), whose page cache holds the pages of a shared mapping.
    var hugetlbFile: HugetlbInode?
    /// What vm_private_data holds for a private hugetlb mapping: its reservation map
    /// (shared by the pieces of a split) and the HPAGE_RESV_* flags.
    var hugetlbResvMap: HugetlbResvMap?
    var hugetlbResv: HugetlbResvFlags = []
    /// vm_userfaultfd_ctx.
    var userfaultfd: UserfaultContext?
    /// vma->anon_vma: set by the first anonymous fault (anon_vma_prepare()),
    /// shared by the pieces of a split. Two VMAs with different anon_vmas
    /// never merge. Set under the page table lock.
    var anonVMA: AnonVMA?

    init(start: UInt64, end: UInt64, flags: VMFlags, file: ShmemInode? = nil, pgoff: UInt64 = 0,
         isDeviceMapping: Bool = false) {
        self.start = start
        self.end = end
        self.flags = flags
        self.file = file
        self.pgoff = pgoff
        self.isDeviceMapping = isDeviceMapping
    }

    func copy() -> VMArea {
        let v = VMArea(start: start, end: end, flags: flags, file: file, pgoff: pgoff, isDeviceMapping: isDeviceMapping)
        v.hugetlbFile = hugetlbFile
        v.hugetlbResvMap = hugetlbResvMap
        v.hugetlbResv = hugetlbResv
        v.userfaultfd = userfaultfd
        v.anonVMA = anonVMA
        return v
    }

    /// vma_is_accessible(): any of VM_READ, VM_WRITE, VM_EXEC. On x86 a present PTE is
    /// always readable, so a CPU load succeeds in any accessible VMA (access_error()).
    var isAccessible: Bool { !flags.isDisjoint(with: [.read, .write, .exec]) }
    /// vma_is_anonymous(): private anonymous memory (no vm_ops).
    var isAnonymous: Bool { file == nil && !isDeviceMapping && !flags.contains(.hugetlb) }
    /// is_cow_mapping(): private and may be written.
    var isCOWMapping: Bool { !flags.contains(.shared) && flags.contains(.mayWrite) }
    var isShared: Bool { flags.contains(.shared) }
    var isHugetlb: Bool { flags.contains(.hugetlb) }
    var length: UInt64 { end - start }

    /// The file page index backing `addr` (linear_page_index()).
    func filePageIndex(_ addr: UInt64, pageShift: Int) -> UInt64 {
        ((addr - start) >> UInt64(pageShift)) + pgoff
    }
}

/// struct anon_vma, reduced to its identity (what is_mergeable_anon_vma() compares).
final class AnonVMA: Sendable {}

/// struct mm_struct: one simulated address space.
///
/// Locking follows the kernel: `mmapLock` (mmap_lock, a real rw semaphore)
/// protects the VMA list; `ptl` (the page table lock) protects `pageTable`.
/// `@unchecked Sendable` because of exactly that discipline.
final class MMStruct: @unchecked Sendable {
    let kernel: SimKernel
    /// mmap_lock.
    let mmapLock: KernelLock
    /// The page table lock (one per mm here; the kernel has split PTE locks).
    let ptl: KernelLock
    /// The VMAs, sorted by address (the maple tree).
    var vmas: [VMArea] = []
    var pageTable: PageTable
    let notifierSubscriptions: MMUNotifierSubscriptions
    /// mm_users (mmget_not_zero() succeeds while it is above 0), under `usersLock` (an atomic in the kernel).
    let usersLock = HostLock()
    var users = 1
    /// MMF_OOM_SKIP: exit_mmap() has unmapped everything, so the OOM reaper has nothing to do.
    var oomSkip = false
    /// mmap_base: top-down allocation starts below it.
    let mmapBase: UInt64 = 0x7fff_f7e0_0000
    let mmapMin: UInt64 = 0x10000

    var pageSize: Int { kernel.configuration.pageSize }
    var pageShift: Int { kernel.pageShift }
    var pmdSize: Int { kernel.configuration.pmdSize }
    /// HPAGE_PMD_ORDER.
    var pmdOrder: Int { kernel.pmdShift - kernel.pageShift }


    init(kernel: SimKernel) {
        self.kernel = kernel
        mmapLock = KernelLock(kernel.scheduler, .mmapLock)
        ptl = KernelLock(kernel.scheduler, .ptl)
        notifierSubscriptions = MMUNotifierSubscriptions(kernel.scheduler)
        pageTable = PageTable(pageShift: kernel.pageShift, pmdShift: kernel.pmdShift)
    }
}
