import ABI
import CDmirror
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    private static func pointer(_ address: UInt64) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(address))
    }

    private static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    /// mmap(2); `fd` nil for anonymous memory. The address of the mapping.
    public static func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
                            fd: FileDescriptor?, offset: Int) throws(Errno) -> UInt64 {
        if let forced = mocked("mmap", [hex(address ?? 0), String(length), String(protection.rawValue),
                                        String(flags.rawValue), String(fd?.rawValue ?? -1), String(offset)]) {
            throw forced
        }
        let p = Glibc.mmap(address.flatMap(pointer), length, protection.rawValue, flags.rawValue,
                           fd?.rawValue ?? -1, off_t(offset))
        guard let p, p != MAP_FAILED else { throw Errno(rawValue: errno) }
        return UInt64(UInt(bitPattern: p))
    }

    /// munmap(2).
    public static func munmap(_ address: UInt64, length: Int) throws(Errno) {
        _ = try call("munmap", [hex(address), String(length)]) { Glibc.munmap(pointer(address), length) }
    }

    /// mprotect(2).
    public static func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        _ = try call("mprotect", [hex(address), String(length), String(protection.rawValue)]) {
            Glibc.mprotect(pointer(address), length, protection.rawValue)
        }
    }

    /// madvise(2). MADV_COLLAPSE may be interrupted; it is not retried (the kernel reports EAGAIN there anyway).
    public static func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        _ = try call("madvise", [hex(address), String(length), advice.description], retryOnInterrupt: false) {
            Glibc.madvise(pointer(address), length, advice.rawValue)
        }
    }

    /// mremap(2); `newAddress` is used with MREMAP_FIXED. The new address.
    public static func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                              newAddress: UInt64?) throws(Errno) -> UInt64 {
        let ret = try shim("mremap", [hex(address), String(oldSize), String(newSize), String(flags.rawValue)]) {
            dmirror_sys_mremap(pointer(address), oldSize, newSize, flags.rawValue, newAddress.flatMap(pointer))
        }
        return UInt64(UInt(bitPattern: ret))
    }
}
