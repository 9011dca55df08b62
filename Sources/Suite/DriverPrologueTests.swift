import ABI
import Harness
import MachineInterface

// Cases the C suite lacks: the driver's common ioctl prologue and two
// commands on ranges with nothing to do. Listed in `HMMSuite.extraTests`.

extension HMMSuite {
    /// A one-page private anonymous buffer the CPU has filled with 0, 1, 2, ...
    private static func smallBuffer(_ t: TestContext, pages: Int = 1,
                                    fileID: StaticString = #fileID, line: UInt = #line) throws -> HMMBuffer {
        let size = pages << t.pageShift
        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]),
                                        fileID: fileID, line: line)
        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }
        return buffer
    }

    /// npages 0 is rejected before dispatch (addr >= addr + 0): EINVAL.
    static let prologueNpagesZero = TestDefinition(.hmm, "dmirror_prologue_npages_zero") { t in
        let buffer = try smallBuffer(t)
        let ret = try hmmDmirrorCmd(t.fd, .read, buffer, 0)
        try t.assertEqual(ret, -Errno.EINVAL.rawValue, "ret")
        buffer.free()
    }

    /// An address that is not page aligned is rejected: EINVAL.
    static let prologueUnalignedAddr = TestDefinition(.hmm, "dmirror_prologue_unaligned_addr") { t in
        let buffer = try smallBuffer(t, pages: 2)
        let base = buffer.ptr
        buffer.ptr = base + 4
        let ret = try hmmDmirrorCmd(t.fd, .read, buffer, 1)
        buffer.ptr = base
        try t.assertEqual(ret, -Errno.EINVAL.rawValue, "ret")
        buffer.free()
    }

    /// A range whose end wraps past the top of the address space: EINVAL.
    static let prologueAddressWrap = TestDefinition(.hmm, "dmirror_prologue_address_wrap") { t in
        let buffer = try smallBuffer(t)
        let top = UInt64.max & ~UInt64(t.pageSize - 1)
        var result: Errno? = nil
        do throws(DmirrorError) {
            try t.fd.perform(.read, addr: top, ptr: buffer.mirrorAddress, npages: 2)
        } catch {
            result = error.errno
        }
        try t.assertEqual(result, .EINVAL, "errno")
        buffer.free()
    }

    /// A request number no generation defines is EINVAL (not ENOTTY), and
    /// the struct is not copied back: cpages/faults keep the caller's values.
    static let prologueUnknownRequest = TestDefinition(.hmm, "dmirror_prologue_unknown_request") { t in
        let buffer = try smallBuffer(t)
        let request = ABIGeneration.ioctlRequest(nr: 0x3F)
        try t.assertTrue(t.fd.abi.command(forRequest: request) == nil, "request 0x3F is unassigned")

        var cmd = DmirrorCmd(addr: buffer.ptr, ptr: buffer.mirrorAddress, npages: 1, cpages: 0xC0FFEE, faults: 0xBEEF)
        let result = t.fd.file.ioctl(request: request, &cmd)
        var errno: Errno? = nil
        if case .failure(let e) = result { errno = e }
        try t.assertEqual(errno, .EINVAL, "errno")
        try t.assertEqual(cmd.cpages, 0xC0FFEE, "cmd.cpages")
        try t.assertEqual(cmd.faults, 0xBEEF, "cmd.faults")
        buffer.free()
    }

    /// FLAGS with a zero flag word fails the prologue's npages check: EINVAL.
    static let prologueFlagsZero = TestDefinition(.hmm, "dmirror_prologue_flags_zero") { t in
        let buffer = try smallBuffer(t)
        let ret = try hmmDmirrorCmd(t.fd, .flags, buffer, 0)
        try t.assertEqual(ret, -Errno.EINVAL.rawValue, "ret")
        buffer.free()
    }

    /// CHECK_EXCLUSIVE on memory never made exclusive succeeds.
    static let checkExclusiveFresh = TestDefinition(.hmm, "dmirror_check_exclusive_fresh") { t in
        let npages = 16
        let buffer = try smallBuffer(t, pages: npages)
        let ret = try hmmDmirrorCmd(t.fd, .checkExclusive, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertCPUInts(buffer.ptr, count: (npages << t.pageShift) / 4) { ival($0) }
        buffer.free()
    }

    /// MIGRATE_TO_SYS with nothing on the device selects no page (cpages 0)
    /// and leaves the data alone.
    static let migrateToSysEmpty = TestDefinition(.hmm, "dmirror_migrate_to_sys_empty") { t in
        let npages = 16
        let buffer = try smallBuffer(t, pages: npages)
        buffer.cpages = 0xDEAD
        let ret = try hmmMigrateDevToSys(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, 0, "buffer->cpages")
        try t.assertCPUInts(buffer.ptr, count: (npages << t.pageShift) / 4) { ival($0) }
        buffer.free()
    }
}
