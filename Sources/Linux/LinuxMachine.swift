import ABI
import MachineInterface
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// This process on the running kernel: real system calls and the real test_hmm driver.
///
/// Addresses are real pointers into this process. CPU `load`/`store` are
/// plain memory copies, so a fault the kernel turns into SIGSEGV kills the
/// process, which the harness reports as one failed case.
public final class LinuxMachine: Machine {
    /// The dmirror ioctl numbering the running kernel speaks.
    public let abi: ABIGeneration
    public let pageSize: Int
    /// read_pmd_pagesize(); fixed for the boot, so read once.
    public let pmdPageSize: Int
    /// default_huge_page_size(); fixed for the boot, so read once.
    public let defaultHugePageSize: Int

    /// Whether dmirror's walk kprobes were installed (`run --count-walks`) and are read per command.
    public let countsWalks: Bool

    public init(abi: ABIGeneration, countsWalks: Bool = false) {
        self.abi = abi
        self.countsWalks = countsWalks
        pageSize = Sys.pageSize
        pmdPageSize = SysFile.readInteger("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") ?? 0
        defaultHugePageSize = LinuxMachine.readDefaultHugePageSize()
    }

    // MARK: Sizes the kernel reports

    /// "Hugepagesize:" of /proc/meminfo, in bytes.
    static func readDefaultHugePageSize(meminfo: String? = SysFile.read("/proc/meminfo")) -> Int {
        guard let meminfo else { return 0 }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("Hugepagesize:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    private func hugetlbPath(_ leaf: String) -> String? {
        guard defaultHugePageSize > 0 else { return nil }
        return "/sys/kernel/mm/hugepages/hugepages-\(defaultHugePageSize / 1024)kB/\(leaf)"
    }

    public func freeHugePages() -> Int {
        hugetlbPath("free_hugepages").flatMap(SysFile.readInteger) ?? 0
    }

    @discardableResult
    public func reserveHugePages(_ count: Int) -> Bool {
        let free = freeHugePages()
        guard free < count, let path = hugetlbPath("nr_hugepages") else { return free >= count }
        let total = SysFile.readInteger(path) ?? 0
        _ = SysFile.write(path, "\(total + count - free)\n")
        return freeHugePages() >= count
    }

    // MARK: Address space

    public func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
                     source: MappingSource, offset: Int) throws(Errno) -> UInt64 {
        let fd: FileDescriptor?
        switch source {
        case .anonymous: fd = nil
        case .file(let file):
            guard let file = file as? LinuxFile else { throw .EBADF }
            fd = file.fd
        case .device(let device):
            guard let file = device.file as? KernelDmirrorFile else { throw .EBADF }
            fd = file.fd
        }
        return try Sys.mmap(address: address, length: length, protection: protection, flags: flags, fd: fd, offset: offset)
    }

    public func munmap(_ address: UInt64, length: Int) throws(Errno) { try Sys.munmap(address, length: length) }

    public func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        try Sys.mprotect(address, length: length, protection: protection)
    }

    public func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        try Sys.madvise(address, length: length, advice: advice)
    }

    public func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                       newAddress: UInt64?) throws(Errno) -> UInt64 {
        try Sys.mremap(address, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: newAddress)
    }

    // MARK: CPU access

    public func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let destination = buffer.baseAddress, buffer.count > 0 else { return }
        // Address 0 traps like a NULL dereference would.
        destination.copyMemory(from: UnsafeRawPointer(bitPattern: UInt(address))!, byteCount: buffer.count)
    }

    public func directMemory(_ address: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(address))
    }

    public func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) {
        guard let source = buffer.baseAddress, buffer.count > 0 else { return }
        UnsafeMutableRawPointer(bitPattern: UInt(address))!.copyMemory(from: source, byteCount: buffer.count)
    }

    // MARK: Files and devices

    public func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile {
        let fd = try Sys.open("/tmp", openTemporaryFileFlag | O_EXCL | O_RDWR, mode: 0o600)
        do {
            try Sys.ftruncate(fd, size)
        } catch {
            try? Sys.close(fd)
            throw error
        }
        return LinuxFile(fd: fd)
    }

    public func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        MirrorDevice(file: try KernelDmirrorFile(unit: unit), abi: abi)
    }

    public func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 {
        let fd = try Sys.open("/proc/self/pagemap", O_RDONLY)
        defer { try? Sys.close(fd) }
        var entry: UInt64 = 0
        let got = try withUnsafeMutableBytes(of: &entry) { (bytes) throws(Errno) in
            try Sys.pread(fd, into: bytes, offset: Int(address / UInt64(pageSize) * 8))
        }
        guard got == 8 else { throw .EIO }
        return entry
    }

    public func openGupTest() throws(Errno) -> any GupTestFile {
        LinuxGupTest(fd: try Sys.open("/sys/kernel/debug/gup_test", O_RDWR), kernel: KernelVersion(release: Sys.kernelRelease()))
    }

    public func userfaultfd() throws(Errno) -> any UserfaultFile {
        LinuxUserfault(fd: try Sys.userfaultfd(flags: O_CLOEXEC | O_NONBLOCK))
    }

    public func eventfd() throws(Errno) -> any EventFile { LinuxEvent(fd: try Sys.eventfd()) }

    // MARK: Threads and time

    public func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> any MachineThread {
        LinuxThread(try HostThread(body))
    }

    public func sleep(nanoseconds: UInt64) { Sys.sleep(nanoseconds: nanoseconds) }

    public func random() -> UInt32 { Sys.random() }

    public func pageWalkCount() -> Int? { countsWalks ? WalkProbes.hits() : nil }

    // MARK: Processes

    public func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        // Flush stdio first, or both processes would later write the same buffered text.
        Sys.flushStandardStreams()
        let pid = try Sys.fork()
        if pid == 0 {
            let status: Int32
            do { status = try child(self) } catch { status = 1 }
            Sys.flushStandardStreams()
            Sys.exit(status)
        }
        return LinuxChild(pid: pid)
    }
}
