import ABI
import MachineInterface

// lib/test_hmm.c: dmirror_fops_unlocked_ioctl(), the prologue every command
// shares, and the bounce buffer the data commands copy through.

extension Dmirror {
    /// dmirror_fops_unlocked_ioctl(): the common prologue, then dispatch. The
    /// struct is copied back only when the command succeeds.
    func ioctl(request: UInt, _ cmdIn: inout DmirrorCmd) -> Result<Void, Errno> {
        guard !released else { return .failure(.EBADF) }
        defer { owner.returnToUser() }
        // An unknown request is EINVAL, not ENOTTY: the driver's switch has a default of -EINVAL.
        guard let command = mdevice.kernel.configuration.abi.command(forRequest: request) else { return .failure(.EINVAL) }
        var cmd = cmdIn
        if cmd.addr & UInt64(pageSize - 1) != 0 { return .failure(.EINVAL) }
        if cmd.addr >= cmd.addr &+ (cmd.npages &<< pageShift) { return .failure(.EINVAL) }
        cmd.cpages = 0
        cmd.faults = 0
        let error: Errno?
        switch command {
        case .read: error = read(&cmd)
        case .write: error = write(&cmd)
        case .migrateToDevice: error = migrateToDevice(&cmd)
        case .migrateToSystem: error = migrateToSystem(&cmd)
        case .snapshot: error = snapshot(&cmd)
        case .exclusive: error = exclusive(&cmd)
        case .checkExclusive: error = checkAtomic(cmd.addr, cmd.addr &+ (cmd.npages << pageShift))
        case .release:
            mdevice.removeChunks()
            error = nil
        case .flags:
            mutex.withLock { flags = cmd.npages }
            error = nil
        case .readUnlocked: error = readUnlocked(&cmd)
        case .migrateOnFaultToDevice:
            // Only the migrate-on-fault variants carry the proposed handler; the rest is the switch's default.
            let proposed = (mm.kernel.has(.migrateOnFault) || mm.kernel.has(.migrateOnFaultNestedLock)) && plain == nil
            error = proposed ? migrateOnFaultToDevice(&cmd) : .EINVAL
        }
        if let error { return .failure(error) }
        cmdIn = cmd
        return .success(())
    }

    /// [addr, addr + npages pages) as every handler computes it; nil when it wraps
    /// (each handler's `end < start` check, behind the prologue's own).
    func commandRange(_ cmd: DmirrorCmd) -> (start: UInt64, end: UInt64, size: UInt64)? {
        let size = cmd.npages << pageShift
        let end = cmd.addr &+ size
        return end < cmd.addr ? nil : (cmd.addr, end, size)
    }

    /// dmirror_bounce_init(): the bounce buffer for [addr, addr + size), or -ENOMEM when
    /// vmalloc() cannot have it.
    func bounceInit(_ addr: UInt64, _ size: UInt64) -> Result<DmirrorBounce, Errno> {
        guard let bounce = DmirrorBounce(kernel: mm.kernel, addr: addr, size: size) else { return .failure(.ENOMEM) }
        return .success(bounce)
    }

    /// `body` with a reference on the mirrored mm (mmget_not_zero() ... mmput()):
    /// `gone` when the process is already exiting.
    func withMM(orElse gone: Errno, _ body: () -> Errno?) -> Errno? {
        // Since the mm is for the mirrored process, get a reference first.
        guard mm.mmgetNotZero() else { return gone }
        defer { mm.mmput() }
        return body()
    }

    /// u64_to_user_ptr(): the caller's buffer (this process's memory).
    func userPointer(_ ptr: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(ptr))
    }

    /// copy_to_user() of the whole bounce buffer; EFAULT for a bad pointer.
    func copyToUser(_ ptr: UInt64, _ bounce: DmirrorBounce) -> Errno? {
        guard let user = userPointer(ptr) else { return .EFAULT }
        user.copyMemory(from: bounce.ptr, byteCount: bounce.size)
        return nil
    }
}

/// struct dmirror_bounce: the vmalloc'ed bounce buffer.
final class DmirrorBounce {
    let addr: UInt64
    let size: Int
    var cpages: UInt64 = 0
    let ptr: UnsafeMutableRawPointer
    /// The kernel whose vmalloc() gave the buffer; nil when the buffer is the caller's own
    /// memory (nothing to copy to user afterwards, nothing to free).
    private let kernel: SimKernel?

    /// Nil where vmalloc(size) fails (a size of more pages than the machine has).
    init?(kernel: SimKernel, addr: UInt64, size: UInt64) {
        guard let ptr = kernel.vmalloc(size) else { return nil }
        self.kernel = kernel
        self.addr = addr
        self.size = Int(size)
        self.ptr = ptr
    }

    init(addr: UInt64, borrowing user: UnsafeMutableRawPointer, size: Int) {
        self.addr = addr
        self.size = size
        ptr = user
        kernel = nil
    }

    /// dmirror_bounce_fini(): vfree().
    deinit { kernel?.vfree(ptr, size: size) }
}
