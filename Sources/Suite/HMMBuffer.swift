import ABI
import Harness
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

/// `struct hmm_buffer`: a mapping in the machine's address space (`ptr`,
/// `size`) and a host-side mirror buffer the driver copies into or from.
public final class HMMBuffer: @unchecked Sendable {
    public let machine: any Machine
    /// The user address the device accesses (tests may re-point it, e.g. to a PMD-aligned address).
    public var ptr: UInt64
    /// The length munmap'd by `free()`.
    public var size: Int
    /// buffer->mirror: data read/written by the device, or one byte per page for SNAPSHOT.
    public let mirror: UnsafeMutableRawBufferPointer
    public var cpages: UInt64 = 0
    public var faults: UInt64 = 0
    private var freed = false

    /// hmm_buffer_alloc(mmap_size, mirror_size, prot, flags, fd).
    public init(_ machine: any Machine, mmapSize: Int, mirrorSize: Int, protection: Protection,
                flags: MapFlags, source: MappingSource = .anonymous) throws(Errno) {
        self.machine = machine
        self.size = mmapSize
        self.mirror = Self.allocateMirror(mirrorSize)
        do {
            self.ptr = try machine.mmap(address: nil, length: mmapSize, protection: protection, flags: flags,
                                        source: source, offset: 0)
        } catch {
            Glibc.free(mirror.baseAddress)
            throw error
        }
    }

    /// A buffer whose mapping the test makes itself (ptr starts at 0), as userfaultfd_read does.
    public init(_ machine: any Machine, mirrorSize: Int, size: Int) {
        self.machine = machine
        self.size = size
        self.ptr = 0
        self.mirror = Self.allocateMirror(mirrorSize)
    }

    /// The C suite mallocs the mirror and lets the driver fault its pages in as it copies.
    /// calloc() gives the same for a large mirror (fresh mmap'd memory, zero and untouched),
    /// where zeroing it here would touch every page first: under TCG that was a visible part
    /// of the *_multiple cases, which allocate a 4 MiB mirror ten times.
    private static func allocateMirror(_ size: Int) -> UnsafeMutableRawBufferPointer {
        let count = max(size, 1)
        guard let memory = calloc(1, count) else { fatalError("hmm_buffer_alloc: calloc(\(count)) failed") }
        return UnsafeMutableRawBufferPointer(start: memory, count: count)
    }

    /// The mirror as `int *`.
    public var mirrorInts: UnsafeMutableBufferPointer<Int32> { mirror.bindMemory(to: Int32.self) }
    /// The mirror as `unsigned char *` (SNAPSHOT bytes).
    public var mirrorBytes: UnsafeMutableBufferPointer<UInt8> { mirror.bindMemory(to: UInt8.self) }

    /// The mirror's user address (cmd.ptr).
    public var mirrorAddress: UInt64 { UInt64(UInt(bitPattern: mirror.baseAddress)) }

    /// hmm_buffer_free(): munmap(ptr, size) if ptr is set, free(mirror).
    public func free() {
        guard !freed else { return }
        freed = true
        if ptr != 0 { try? machine.munmap(ptr, length: size) }
        Glibc.free(mirror.baseAddress)
    }

    deinit { if !freed { Glibc.free(mirror.baseAddress) } }
}

/// hmm_dmirror_cmd(fd, request, buffer, npages): addr = buffer->ptr,
/// ptr = buffer->mirror; 0 or -errno, with cpages/faults copied into `buffer`
/// on success. A command the running kernel's ABI lacks skips the case.
public func hmmDmirrorCmd(_ device: MirrorDevice, _ command: DmirrorCommand, _ buffer: HMMBuffer,
                          _ npages: Int) throws -> Int32 {
    do {
        let result = try device.perform(command, addr: buffer.ptr, ptr: buffer.mirrorAddress, npages: UInt64(npages))
        buffer.cpages = result.cpages
        buffer.faults = result.faults
        return 0
    } catch {
        switch error {
        case .failed(_, let errno): return -errno.rawValue
        case .unsupported: throw CaseInterruption.skipped(error.description)
        }
    }
}

/// hmm_migrate_sys_to_dev().
public func hmmMigrateSysToDev(_ device: MirrorDevice, _ buffer: HMMBuffer, _ npages: Int) throws -> Int32 {
    try hmmDmirrorCmd(device, .migrateToDevice, buffer, npages)
}

/// hmm_migrate_dev_to_sys().
public func hmmMigrateDevToSys(_ device: MirrorDevice, _ buffer: HMMBuffer, _ npages: Int) throws -> Int32 {
    try hmmDmirrorCmd(device, .migrateToSystem, buffer, npages)
}

/// The suite's constants (hmm-tests.c).
public enum HMMConstants {
    /// HMM_BUFFER_SIZE: 4 MiB.
    public static let bufferSize = 1024 << 12
    /// TWOMEG.
    public static let twoMeg = 1 << 21
    /// NTIMES.
    public static let ntimes = 10
    /// ALIGN(x, a) for a power of two.
    public static func align(_ x: Int, _ a: Int) -> Int { (x + (a - 1)) & ~(a - 1) }
    public static func align(_ x: UInt64, _ a: Int) -> UInt64 { (x + UInt64(a - 1)) & ~UInt64(a - 1) }
}
