import CDmirror
import DmirrorDevice
#if canImport(Glibc)
import Glibc
#endif

/// This process on the running kernel: real system calls and the real test_hmm driver.
///
/// Addresses are real pointers into this process. CPU `load`/`store` are
/// plain memory copies, so a fault the kernel turns into SIGSEGV kills the
/// process, which the harness reports as one failed case.
public final class LinuxMachine: Machine {
    public let backend = Backend.kernel
    /// The dmirror ioctl numbering the running kernel speaks.
    public let abi: ABIGeneration
    public let pageSize: Int

    /// read_pmd_pagesize(); fixed for the boot, so read once.
    public let pmdPageSize: Int
    /// default_huge_page_size(); fixed for the boot, so read once.
    public let defaultHugePageSize: Int

    public init(abi: ABIGeneration) {
        self.abi = abi
        self.pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        self.pmdPageSize = SysFile.readInteger("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") ?? 0
        self.defaultHugePageSize = LinuxMachine.readDefaultHugePageSize()
    }

    // MARK: Sizes the kernel reports

    private static func readDefaultHugePageSize() -> Int {
        guard let meminfo = SysFile.read("/proc/meminfo") else { return 0 }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("Hugepagesize:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    private func hugetlbPath(_ leaf: String) -> String? {
        let size = defaultHugePageSize
        guard size > 0 else { return nil }
        return "/sys/kernel/mm/hugepages/hugepages-\(size / 1024)kB/\(leaf)"
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
        let fd: Int32
        switch source {
        case .anonymous: fd = -1
        case .file(let file): fd = try LinuxMachine.descriptor(of: file)
        case .device(let device):
            guard let file = device.file as? KernelDmirrorFile else { throw .EBADF }
            fd = file.fd
        }
        let hint = address.flatMap { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        let p = Glibc.mmap(hint, length, protection.rawValue, flags.rawValue, fd, off_t(offset))
        guard let p, p != MAP_FAILED else { throw Errno.current }
        return UInt64(UInt(bitPattern: p))
    }

    public func munmap(_ address: UInt64, length: Int) throws(Errno) {
        guard Glibc.munmap(LinuxMachine.pointer(address), length) == 0 else { throw Errno.current }
    }

    public func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        guard Glibc.mprotect(LinuxMachine.pointer(address), length, protection.rawValue) == 0 else {
            throw Errno.current
        }
    }

    public func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        guard Glibc.madvise(LinuxMachine.pointer(address), length, advice.rawValue) == 0 else {
            throw Errno.current
        }
    }

    public func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                       newAddress: UInt64?) throws(Errno) -> UInt64 {
        let target = newAddress.flatMap { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        let ret = dmirror_shim_mremap(LinuxMachine.pointer(address), oldSize, newSize, flags.rawValue, target)
        guard ret >= 0 || ret < -4095 else { throw Errno(Int32(-ret)) }
        return UInt64(UInt(bitPattern: ret))
    }

    // MARK: CPU access

    public func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let destination = buffer.baseAddress, buffer.count > 0 else { return }
        // Address 0 traps like a NULL dereference would.
        memcpy(destination, LinuxMachine.pointer(address)!, buffer.count)
    }

    public func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) {
        guard let source = buffer.baseAddress, buffer.count > 0 else { return }
        memcpy(LinuxMachine.pointer(address)!, source, buffer.count)
    }

    // MARK: Files and devices

    public func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile {
        let fd = dmirror_shim_open("/tmp", dmirror_shim_O_TMPFILE | O_EXCL | O_RDWR, 0o600)
        guard fd >= 0 else { throw Errno(-fd) }
        while ftruncate(fd, off_t(size)) != 0 {
            let error = Errno.current
            guard error == .EINTR else {
                Glibc.close(fd)
                throw error
            }
        }
        return LinuxFile(fd: fd)
    }

    public func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        MirrorDevice(file: try KernelDmirrorFile(unit: unit), abi: abi)
    }

    public func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 {
        let fd = dmirror_shim_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0)
        guard fd >= 0 else { throw Errno(-fd) }
        defer { Glibc.close(fd) }
        var entry: UInt64 = 0
        let offset = off_t(address / UInt64(pageSize) * 8)
        let got = withUnsafeMutableBytes(of: &entry) { Glibc.pread(fd, $0.baseAddress, 8, offset) }
        guard got == 8 else { throw got < 0 ? Errno.current : .EIO }
        return entry
    }

    public func openGupTest() throws(Errno) -> any GupTestFile {
        let fd = dmirror_shim_open("/sys/kernel/debug/gup_test", O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else { throw Errno(-fd) }
        return LinuxGupTest(fd: fd)
    }

    public func userfaultfd() throws(Errno) -> any UserfaultFile {
        let fd = dmirror_shim_userfaultfd(O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Errno(-fd) }
        let api = dmirror_shim_uffd_api(fd)
        guard api == 0 else {
            Glibc.close(fd)
            throw Errno(-api)
        }
        return LinuxUserfault(fd: fd)
    }

    public func eventfd() throws(Errno) -> any EventFile {
        let fd = dmirror_shim_eventfd()
        guard fd >= 0 else { throw Errno(-fd) }
        return LinuxEvent(fd: fd)
    }

    // MARK: Processes

    public func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        // Flush stdio first, or both processes would later write the same buffered text.
        fflush(nil)
        let pid = dmirror_shim_fork()
        guard pid >= 0 else { throw Errno(-pid) }
        if pid == 0 {
            let status: Int32
            do { status = try child(self) } catch { status = 1 }
            fflush(nil)
            _exit(status)
        }
        return LinuxChild(pid: pid)
    }

    // MARK: Helpers

    static func pointer(_ address: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(address))
    }

    static func descriptor(of file: any MachineFile) throws(Errno) -> Int32 {
        guard let file = file as? LinuxFile else { throw .EBADF }
        return file.fd
    }
}
