import ABI
import CDmirror
import SystemPackage

extension Sys {
    /// ioctl(2) with a pointer argument. Retries on EINTR (hmm-tests.c's
    /// hmm_dmirror_cmd() does; the driver copies nothing back on failure).
    public static func ioctl(_ fd: FileDescriptor, _ request: UInt, _ argument: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        try shim("ioctl", [String(fd.rawValue), "0x" + String(request, radix: 16)]) {
            dmirror_sys_ioctl(fd.rawValue, request, argument)
        }
    }

    /// userfaultfd(2) followed by UFFDIO_API. The descriptor is closed if the handshake fails.
    public static func userfaultfd(flags: Int32) throws(Errno) -> FileDescriptor {
        let fd = FileDescriptor(rawValue: try shim("userfaultfd", [String(flags)]) { dmirror_sys_userfaultfd(flags) })
        do {
            _ = try shim("ioctl", [String(fd.rawValue), "UFFDIO_API"]) { dmirror_uffd_api(fd.rawValue) }
        } catch {
            try? close(fd)
            throw error
        }
        return fd
    }

    /// UFFDIO_REGISTER with UFFDIO_REGISTER_MODE_MISSING.
    public static func userfaultfdRegisterMissing(_ fd: FileDescriptor, _ start: UInt64, length: UInt64) throws(Errno) {
        _ = try shim("ioctl", [String(fd.rawValue), "UFFDIO_REGISTER"]) {
            dmirror_uffd_register_missing(fd.rawValue, start, length)
        }
    }

    /// UFFDIO_COPY of `source` to `destination` (wakes the faulting thread).
    public static func userfaultfdCopy(_ fd: FileDescriptor, to destination: UInt64, from source: UnsafeRawBufferPointer) throws(Errno) {
        _ = try shim("ioctl", [String(fd.rawValue), "UFFDIO_COPY"]) {
            dmirror_uffd_copy(fd.rawValue, destination, source.baseAddress, UInt64(source.count))
        }
    }

    /// Reads one `struct uffd_msg`; its fault address (0 for a message that is not a page fault),
    /// or nil when a non-blocking descriptor has none (EAGAIN).
    public static func userfaultfdReadFault(_ fd: FileDescriptor) throws(Errno) -> UInt64? {
        let size = dmirror_uffd_msg_size
        let message = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { message.deallocate() }
        let n: Int
        do {
            n = try read(fd, into: message)
        } catch .EAGAIN {
            return nil
        }
        guard n == size else { throw .EIO }
        return dmirror_uffd_msg_fault_address(message.baseAddress)
    }

    /// eventfd(0, EFD_CLOEXEC).
    public static func eventfd() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try shim("eventfd", []) { dmirror_sys_eventfd() })
    }

    /// One gup_test ioctl (mm/gup_test.h) over [address, address + size); `flags` is the running
    /// kernel's FOLL_* word (`GupFlags.kernelValue(on:)`).
    public static func gupTest(_ fd: FileDescriptor, _ operation: GupTestOperation, address: UInt64, size: Int,
                               flags: UInt32, pagesPerCall: Int) throws(Errno) {
        _ = try shim("ioctl", [String(fd.rawValue), "gup_test \(operation.rawValue)"]) {
            dmirror_gup_test(fd.rawValue, operation.rawValue, address, UInt64(size), flags, UInt32(pagesPerCall))
        }
    }
}
