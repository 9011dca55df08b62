#if canImport(Glibc)
import Glibc
#endif

/// The host memory behind simulated page frames: a small page allocator.
///
/// Frames of one size are carved from large host mappings advised
/// MADV_HUGEPAGE and recycled on free, as the kernel's page allocator
/// recycles struct pages. Compared with one malloc per page this keeps the
/// host's own page faults (first touch of fresh memory) to a few per
/// megabyte and lets a freed 4 MiB buffer serve the next one: a case that
/// migrates the same range ten times touches new host memory once.
///
/// `@unchecked Sendable`: the free lists are protected by `lock`.
final class PageFrameAllocator: @unchecked Sendable {
    /// One allocator per test process; frames are plain memory, not tied to a SimKernel.
    static let shared = PageFrameAllocator()

    /// Host mappings are made in units of this many bytes (a multiple of 2 MiB).
    private static let slabSize = 32 << 20
    private static let hostHugePage = 2 << 20

    private let lock = HostLock()
    /// Freed frames by size in bytes.
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    /// The untouched tail of the current slab (host-zeroed memory).
    private var fresh: UnsafeMutableRawPointer?
    private var freshEnd: UnsafeMutableRawPointer?

    /// A frame of `byteCount` bytes (a power-of-two multiple of the page
    /// size), aligned to its size up to 2 MiB; zero-filled when `zeroed`.
    func allocate(byteCount: Int, zeroed: Bool) -> UnsafeMutableRawPointer {
        let (frame, recycled) = lock.withLock { take(byteCount) }
        // Fresh slab memory is already zero; only a recycled frame needs clearing.
        if zeroed && recycled { frame.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount) }
        return frame
    }

    /// Returns a frame to its free list.
    func release(_ frame: UnsafeMutableRawPointer, byteCount: Int) {
        lock.withLock { free[byteCount, default: []].append(frame) }
    }

    private func take(_ byteCount: Int) -> (UnsafeMutableRawPointer, recycled: Bool) {
        if let frame = free[byteCount]?.popLast() { return (frame, true) }
        let alignment = min(byteCount, Self.hostHugePage)
        if let start = fresh, let end = freshEnd {
            let aligned = start.alignedUp(toMultipleOf: alignment)
            if end - aligned >= byteCount {
                fresh = aligned + byteCount
                return (aligned, false)
            }
        }
        // A new slab; whatever was left of the old one is simply not used.
        let size = max(Self.slabSize, byteCount + Self.hostHugePage)
        guard let slab = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              slab != MAP_FAILED else {
            fatalError("simulator: out of host memory for page frames (\(size) bytes)")
        }
        // Host THP makes first touch one fault per 2 MiB instead of per 4 KiB (advice only).
        _ = madvise(slab, size, 14 /* MADV_HUGEPAGE */)
        let aligned = slab.alignedUp(toMultipleOf: max(alignment, Self.hostHugePage))
        fresh = aligned + byteCount
        freshEnd = slab + size
        return (aligned, false)
    }
}
