#if canImport(Glibc)
import Glibc
#endif

/// The host memory behind simulated page frames: a small buddy allocator of
/// two orders, a page and a PMD's worth, as the kernel's page allocator hands
/// out order-0 pages and THPs from the same memory.
///
/// All frames come from one arena of reserved host address space, carved into
/// 2 MiB blocks. A block is free, whole (a PMD-sized frame), or split into
/// 4 KiB frames; a split block whose frames are all free again becomes a free
/// block, so a run that migrates 256 MiB as THPs and then as small pages
/// needs 256 MiB, not twice that. Freed frames stay resident and are reused
/// (only a recycled frame is cleared), so a case touches fresh host memory
/// once per frame it ever holds at the same time: steady state costs no host
/// page faults. Frames of other sizes (rare) are mapped and unmapped directly.
///
/// `@unchecked Sendable`: the free lists are protected by `lock`.
final class PageFrameAllocator: @unchecked Sendable {
    /// One allocator per test process; frames are plain memory, not tied to a SimKernel.
    static let shared = PageFrameAllocator()

    static let smallFrame = 4096
    static let blockSize = 2 << 20
    private static let framesPerBlock = blockSize / smallFrame
    /// Reserved address space (MAP_NORESERVE: only what is touched costs memory).
    private static let arenaSize = 64 << 30

    private let lock = HostLock()
    private let arena: UnsafeMutableRawPointer
    /// Blocks handed out so far (the arena's used prefix).
    private var blocksUsed = 0
    /// Blocks with nothing allocated in them.
    private var freeBlocks: [Int] = []
    /// Each split block's free small frames (indices within the block, a stack of
    /// `framesPerBlock` slots per block) and how many there are, -1 for a block that is not
    /// split: plain memory, so taking or returning a frame touches no reference count.
    private let freeFrames: UnsafeMutablePointer<Int16>
    private let freeCount: UnsafeMutablePointer<Int32>
    /// Split blocks with a free small frame, to take from before splitting another.
    private var partial: [Int] = []
    /// Blocks ever handed out: their memory may hold old data.
    private var touched: [Bool]

    private init() {
        let reserved = mmap(nil, Self.arenaSize, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let reserved, reserved != MAP_FAILED else {
            fatalError("simulator: cannot reserve \(Self.arenaSize >> 30) GiB of address space for page frames")
        }
        // Host THP makes first touch one fault per 2 MiB instead of per 4 KiB (advice only).
        _ = madvise(reserved, Self.arenaSize, 14 /* MADV_HUGEPAGE */)
        arena = reserved.alignedUp(toMultipleOf: Self.blockSize)
        touched = Array(repeating: false, count: (Self.arenaSize - (arena - reserved)) / Self.blockSize)
        let stacks = mmap(nil, touched.count * Self.framesPerBlock * MemoryLayout<Int16>.stride,
                          PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let stacks, stacks != MAP_FAILED else {
            fatalError("simulator: cannot reserve the page frame allocator's free lists")
        }
        freeFrames = stacks.bindMemory(to: Int16.self, capacity: touched.count * Self.framesPerBlock)
        freeCount = .allocate(capacity: touched.count)
        freeCount.initialize(repeating: -1, count: touched.count)
    }

    /// A frame of `byteCount` bytes (a power-of-two multiple of the page
    /// size), aligned to its size up to 2 MiB; zero-filled when `zeroed`.
    func allocate(byteCount: Int, zeroed: Bool) -> UnsafeMutableRawPointer {
        let frame: UnsafeMutableRawPointer
        let recycled: Bool
        switch byteCount {
        case Self.smallFrame:
            (frame, recycled) = lock.withLock { takeSmall() }
        case Self.blockSize:
            (frame, recycled) = lock.withLock {
                let (block, used) = takeBlock()
                return (arena + block * Self.blockSize, used)
            }
        default:
            guard let mapped = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  mapped != MAP_FAILED else {
                fatalError("simulator: out of host memory for a \(byteCount)-byte page frame")
            }
            return mapped
        }
        // Fresh memory is already zero; only a recycled frame needs clearing.
        if zeroed && recycled { frame.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount) }
        return frame
    }

    /// Returns a frame: a small one to its block (a block whose frames are all free
    /// is a free block again), a block to the free blocks.
    func release(_ frame: UnsafeMutableRawPointer, byteCount: Int) {
        switch byteCount {
        case Self.smallFrame:
            lock.withLock {
                let offset = frame - arena
                let block = offset / Self.blockSize
                // A block whose every frame was out has a free frame again.
                let n = max(Int(freeCount[block]), 0)
                if n == 0 { partial.append(block) }
                freeFrames[block * Self.framesPerBlock + n] = Int16((offset % Self.blockSize) / Self.smallFrame)
                freeCount[block] = Int32(n + 1)
                if n + 1 == Self.framesPerBlock {
                    freeCount[block] = -1
                    partial.removeAll { $0 == block }
                    freeBlocks.append(block)
                }
            }
        case Self.blockSize:
            lock.withLock { freeBlocks.append((frame - arena) / Self.blockSize) }
        default:
            munmap(frame, byteCount)
        }
    }

    /// A whole block, and whether it was used before. Caller holds `lock`.
    private func takeBlock() -> (Int, Bool) {
        if let block = freeBlocks.popLast() { return (block, true) }
        guard blocksUsed < touched.count else {
            fatalError("simulator: page frames exhausted (\(Self.arenaSize >> 30) GiB of simulated memory)")
        }
        blocksUsed += 1
        touched[blocksUsed - 1] = true
        return (blocksUsed - 1, false)
    }

    /// A small frame from a split block, splitting a block if none has one free. Caller holds `lock`.
    private func takeSmall() -> (UnsafeMutableRawPointer, Bool) {
        if let block = partial.last, freeCount[block] > 0 {
            let n = Int(freeCount[block]) - 1
            freeCount[block] = Int32(n)
            let index = freeFrames[block * Self.framesPerBlock + n]
            // An empty block stays split (its frames come back one by one) but leaves `partial`.
            if n == 0 { partial.removeLast() }
            return (arena + block * Self.blockSize + Int(index) * Self.smallFrame, true)
        }
        let (block, recycled) = takeBlock()
        // Frame 0 goes out; the rest are free, taken from the low end first (address order).
        let stack = freeFrames + block * Self.framesPerBlock
        for k in 0..<(Self.framesPerBlock - 1) { stack[k] = Int16(Self.framesPerBlock - 1 - k) }
        freeCount[block] = Int32(Self.framesPerBlock - 1)
        partial.append(block)
        return (arena + block * Self.blockSize, recycled)
    }
}
