#if canImport(Glibc)
import Glibc
#endif

// mm/vmalloc.c: vmalloc() and vfree(), failing where the kernel's fail rather
// than wherever the host happens to run out.

extension SimKernel {
    /// Sizes up to this come from the host's malloc; larger ones are mapped lazily.
    private static let vmallocHeapLimit = 16 << 20

    /// vmalloc(): `size` bytes of virtually contiguous memory, or nil (the caller's -ENOMEM).
    /// __vmalloc_node_range_noprof() refuses a size of more pages than the machine has
    /// (totalram_pages()) before it allocates anything; below that the simulator does not
    /// model memory pressure. The host memory behind a large buffer is reserved lazily
    /// (MAP_NORESERVE): only the pages the driver writes are ever backed, so a size the
    /// guest could satisfy never fails, nor aborts, on a smaller host.
    func vmalloc(_ bytes: UInt64) -> UnsafeMutableRawPointer? {
        guard !vmallocRefuses(bytes) else { return nil }
        let size = Int(bytes)
        if size <= Self.vmallocHeapLimit { return malloc(size) }
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              mapped != MAP_FAILED else { return nil }
        return mapped
    }

    /// The sizes __vmalloc_node_range_noprof() refuses before allocating anything: none
    /// (WARN_ON_ONCE(!size)), or more pages than totalram_pages().
    func vmallocRefuses(_ bytes: UInt64) -> Bool {
        bytes == 0 || bytes >> UInt64(pageShift) > UInt64(configuration.totalRAMPages)
    }

    /// vfree() of what vmalloc(`size`) returned.
    func vfree(_ pointer: UnsafeMutableRawPointer, size: Int) {
        if size <= Self.vmallocHeapLimit {
            free(pointer)
        } else {
            munmap(pointer, size)
        }
    }
}
