import ABI

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
    /// `address` as a pointer this process can use in place, when the machine's
    /// memory is this process's own (the kernel backend); nil otherwise. The
    /// suite's `int *ptr` loops then run on the memory itself, as the C suite's
    /// do, instead of through a bounce buffer and a copy.
    func directMemory(_ address: UInt64) -> UnsafeMutableRawPointer?

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

    // MARK: Threads and time

    /// pthread_create(3): `body` runs on a new thread of this process, sharing its
    /// address space (the simulator's thread is a task of the same simulated mm).
    func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread
    /// nanosleep(2).
    func sleep(nanoseconds: UInt64)
    /// hmm_random(): 32 random bits (/dev/urandom on Linux; a seeded generator in the simulator).
    func random() -> UInt32

    /// Page-table walks so far, system-wide: the calls of walk_page_range() and
    /// walk_page_range_vma() (what hmm_range_fault() and migrate_vma_setup() walk
    /// with). The simulator counts its own; on Linux they are the hits of dmirror's
    /// kprobes once `dmirror run --count-walks` installed them. Nil: not counted.
    func pageWalkCount() -> Int?

    // MARK: Processes

    /// fork(2). `child` runs in the child process against the child's machine
    /// (a copy-on-write copy of this address space); its return value is the
    /// child's exit status. A child that throws exits with status 1.
    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess
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

/// An open regular file (tmpfs).
public protocol MachineFile: AnyObject, Sendable {
    /// pwrite(2); returns bytes written.
    func pwrite(_ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int
    /// pread(2); returns bytes read.
    func pread(into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int
    /// close(2). Mappings of the file stay valid.
    func close() throws(Errno)
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

/// A forked child.
public protocol ChildProcess: AnyObject, Sendable {
    var pid: Int32 { get }
    /// kill(2).
    func kill(_ signal: Signal) throws(Errno)
    /// waitpid(2), blocking until the child has ended.
    func wait() throws(Errno) -> ExitStatus
    /// process_mrelease(2) on a pidfd of the child: reap the memory of a child a
    /// fatal signal is ending, as the OOM reaper does (__oom_reap_task_mm(), whose
    /// invalidations may not block). EINVAL if the child is not dying, EAGAIN if a
    /// notifier refused a non-blocking invalidation, ESRCH once it is gone.
    func releaseMemory() throws(Errno)
}

/// A thread started by `Machine.startThread`.
public protocol MachineThread: AnyObject, Sendable {
    /// pthread_join(3).
    func join()
}
