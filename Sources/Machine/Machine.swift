import DmirrorDevice

/// "A process": its memory, its CPU's loads and stores, temp files, forked
/// children, and the mirror devices it opens.
///
/// The ported hmm-tests suite is written once against this protocol. Two
/// implementations exist: `LinuxMachine` (this process, real system calls,
/// the real test_hmm driver) and the simulator's process (a model of the
/// kernel's mm and of lib/test_hmm.c). The real kernel is the oracle: the
/// simulator must answer every call as the kernel would.
///
/// Addresses are user virtual addresses of *this* machine's address space.
/// On Linux they are real pointers; in the simulator they are simulated.
public protocol Machine: AnyObject, Sendable {
    /// Which implementation this is.
    var backend: Backend { get }

    /// sysconf(_SC_PAGE_SIZE).
    var pageSize: Int { get }
    /// read_pmd_pagesize(): the THP PMD size from
    /// /sys/kernel/mm/transparent_hugepage/hpage_pmd_size, or 0 without THP.
    var pmdPageSize: Int { get }
    /// default_huge_page_size(): the hugetlbfs default page size ("Hugepagesize:"), 0 without hugetlb.
    var defaultHugePageSize: Int { get }
    /// hugetlb_free_default_pages(): free pages in the default hugetlb pool.
    func freeHugePages() -> Int
    /// hugetlb_setup_default(n): make sure at least `n` default huge pages exist
    /// (raises nr_hugepages if needed). Returns whether the pool now has them.
    @discardableResult func reserveHugePages(_ count: Int) -> Bool

    // MARK: Address space

    /// mmap(2). `address` is a hint unless `flags` has `.fixed`/`.fixedNoReplace`.
    func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
              source: MappingSource, offset: Int) throws(Errno) -> UInt64
    /// munmap(2).
    func munmap(_ address: UInt64, length: Int) throws(Errno)
    /// mprotect(2).
    func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno)
    /// madvise(2).
    func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno)
    /// mremap(2); `newAddress` is used with `.fixed`.
    func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                newAddress: UInt64?) throws(Errno) -> UInt64

    // MARK: CPU access

    /// The CPU loads `buffer.count` bytes starting at `address`, page by page
    /// in ascending order, faulting as the kernel would (a device-private page
    /// migrates back to RAM, an exclusive entry is restored, a uffd-registered
    /// hole waits for its handler). An access the kernel answers with a fatal
    /// signal (SIGSEGV/SIGBUS) kills this process, exactly as on Linux.
    func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer)
    /// The CPU stores `buffer` at `address`, page by page in ascending order
    /// (write faults: COW, zero-page replacement, migrate_to_ram, ...).
    func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer)

    // MARK: Files and devices

    /// hmm_create_file(): open("/tmp", O_TMPFILE|O_EXCL|O_RDWR, 0600) + ftruncate(size).
    func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile
    /// open("/dev/hmm_dmirrorN", O_RDWR): a dmirror file bound to this machine's mm.
    func openMirror(unit: Int) throws(Errno) -> MirrorDevice
    /// The 64-bit /proc/self/pagemap entry for the page at `address`.
    func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64
    /// open("/sys/kernel/debug/gup_test", O_RDWR).
    func openGupTest() throws(Errno) -> any GupTestFile
    /// userfaultfd(O_CLOEXEC|O_NONBLOCK) followed by UFFDIO_API.
    func userfaultfd() throws(Errno) -> any UserfaultFile
    /// eventfd(0, EFD_CLOEXEC).
    func eventfd() throws(Errno) -> any EventFile

    // MARK: Processes

    /// fork(2). `child` runs in the child process against the child's machine
    /// (a copy-on-write copy of this address space); its return value is the
    /// child's exit status. A child that throws exits with status 1.
    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess
}

/// Which implementation a `Machine` is.
public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The running kernel and its test_hmm driver.
    case kernel
    /// dmirror's simulator of the kernel's mm and of test_hmm.
    case simulator = "sim"
    public var description: String { rawValue }
}

/// PROT_* bits.
public struct Protection: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = Protection(rawValue: 0x1)
    public static let write = Protection(rawValue: 0x2)
    public static let exec = Protection(rawValue: 0x4)
    public static let none: Protection = []
}

/// MAP_* flags (x86_64 values).
public struct MapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let shared = MapFlags(rawValue: 0x01)
    public static let `private` = MapFlags(rawValue: 0x02)
    public static let fixed = MapFlags(rawValue: 0x10)
    public static let anonymous = MapFlags(rawValue: 0x20)
    public static let populate = MapFlags(rawValue: 0x8000)
    public static let hugetlb = MapFlags(rawValue: 0x40000)
    public static let fixedNoReplace = MapFlags(rawValue: 0x100000)
}

/// What backs a mapping (mmap's fd argument).
public enum MappingSource: Sendable {
    /// MAP_ANONYMOUS (fd -1).
    case anonymous
    /// A regular file (here: a tmpfs O_TMPFILE).
    case file(any MachineFile)
    /// The dmirror device file itself (dmirror_fops.mmap: zeroed kernel pages, vm_insert_page).
    case device(MirrorDevice)
}

/// madvise(2) advice values used by the suite.
public enum Advice: Int32, Sendable {
    case dontNeed = 4
    case free = 8
    case hugePage = 14
    case noHugePage = 15
    case collapse = 25
}

/// MREMAP_* flags.
public struct RemapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let mayMove = RemapFlags(rawValue: 1)
    public static let fixed = RemapFlags(rawValue: 2)
    public static let dontUnmap = RemapFlags(rawValue: 4)
}

/// /proc/self/pagemap entry bits.
public enum Pagemap {
    /// PM_PRESENT, bit 63.
    public static let present: UInt64 = 1 << 63
    /// PM_SWAP, bit 62 (also set for device-private and migration entries).
    public static let swap: UInt64 = 1 << 62
}

/// An open regular file (tmpfs).
public protocol MachineFile: AnyObject, Sendable {
    /// pwrite(2); returns bytes written.
    func pwrite(_ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int
    /// pread(2); returns bytes read.
    func pread(into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int
    /// close(2). Mappings of the file stay valid.
    func close() throws(Errno)
}

/// gup_test's operations (mm/gup_test.h).
public enum GupTestOperation: Int32, Sendable {
    /// GUP_FAST_BENCHMARK: get_user_pages_fast().
    case gupFastBenchmark = 1
    /// PIN_FAST_BENCHMARK: pin_user_pages_fast().
    case pinFastBenchmark = 2
    /// PIN_LONGTERM_BENCHMARK: pin_user_pages(FOLL_LONGTERM).
    case pinLongtermBenchmark = 3
    /// GUP_BASIC_TEST: get_user_pages().
    case gupBasicTest = 4
}

/// FOLL_* flags the suite passes to gup_test.
public struct GupFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let write = GupFlags(rawValue: 0x01)
    public static let longterm = GupFlags(rawValue: 0x100)
}

/// /sys/kernel/debug/gup_test (CONFIG_GUP_TEST).
public protocol GupTestFile: AnyObject, Sendable {
    /// ioctl(fd, op, &struct gup_test{addr, size, gup_flags, nr_pages_per_call}).
    func run(_ operation: GupTestOperation, address: UInt64, size: Int, flags: GupFlags, pagesPerCall: Int) throws(Errno)
    func close()
}

/// A userfaultfd registered in MISSING mode.
public protocol UserfaultFile: AnyObject, Sendable {
    /// UFFDIO_REGISTER with UFFDIO_REGISTER_MODE_MISSING.
    func registerMissing(_ address: UInt64, length: Int) throws(Errno)
    /// poll() on the uffd and `stop`; read(2) one uffd_msg. Returns the
    /// faulting address, or nil once `stop` was signalled.
    func waitForFault(stop: any EventFile) throws(Errno) -> UInt64?
    /// UFFDIO_COPY of `source` to the page at `address` (wakes the faulting thread).
    func copy(to address: UInt64, from source: UnsafeRawBufferPointer) throws(Errno)
    func close()
}

/// An eventfd, used to stop a uffd handler thread.
public protocol EventFile: AnyObject, Sendable {
    /// write(2) of an 8-byte counter increment.
    func signal(_ value: UInt64) throws(Errno)
    func close()
}

/// How a child process ended (waitpid's status).
public enum ExitStatus: Hashable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A forked child.
public protocol ChildProcess: AnyObject, Sendable {
    var pid: Int32 { get }
    /// kill(2).
    func kill(_ signal: Int32) throws(Errno)
    /// waitpid(2), blocking until the child has ended.
    func wait() throws(Errno) -> ExitStatus
}
