import ABI
import Harness
import MachineInterface

// Device-exclusive (atomic) access (hmm-tests.c: exclusive,
// exclusive_mprotect, exclusive_cow).

extension TestContext {
    /// `for (i...) ASSERT_EQ(ptr[i]++, i); for (i...) ASSERT_EQ(ptr[i], i + 1);`
    /// on `machine`: one bulk load and check, one bulk store of the
    /// incremented values, then a second bulk load and check.
    func readIncrementAndCheck(_ machine: any Machine, _ address: UInt64, count: Int,
                               fileID: StaticString = #fileID, line: UInt = #line) throws {
        var values = machine.loadInt32s(address, count: count)
        try values.withUnsafeBufferPointer { try assertInts($0, "ptr", fileID: fileID, line: line) { ival($0) } }
        values.withUnsafeMutableBufferPointer { ints in
            for i in 0..<ints.count { ints[i] &+= 1 }
        }
        machine.storeInt32s(address, values)
        try assertCPUInts(machine, address, count: count, "ptr", fileID: fileID, line: line) { ival($0 + 1) }
    }
}

extension HMMSuite {
    /// EXCLUSIVE maps every page for device atomics and reads it back; CPU
    /// accesses restore normal mappings (data intact and writable), after
    /// which CHECK_EXCLUSIVE finds no exclusive entry left.
    static let exclusive = TestDefinition(.hmm, "exclusive") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmDmirrorCmd(t.fd, .exclusive, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        try t.readIncrementAndCheck(t.machine, buffer.ptr, count: size / 4)

        ret = try hmmDmirrorCmd(t.fd, .checkExclusive, buffer, npages)
        try t.assertEqual(ret, 0, "ret")

        buffer.free()
    }

    /// After EXCLUSIVE, mprotect(PROT_READ) makes a device WRITE fail with EPERM.
    static let exclusiveMprotect = TestDefinition(.hmm, "exclusive_mprotect") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmDmirrorCmd(t.fd, .exclusive, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, -Errno.EPERM.rawValue, "ret")

        buffer.free()
    }

    /// Exclusive pages shared by fork() copy-on-write correctly: parent and
    /// child each read-increment-check their own copy, and the child exits 0.
    static let exclusiveCow = TestDefinition(.hmm, "exclusive_cow") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        let ret = try hmmDmirrorCmd(t.fd, .exclusive, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        let address = buffer.ptr
        let child = try forkChild(t) { childMachine in
            try t.readIncrementAndCheck(childMachine, address, count: size / 4)
            return 0
        }

        try t.readIncrementAndCheck(t.machine, buffer.ptr, count: size / 4)

        let status: ExitStatus
        do {
            status = try child.wait()
        } catch {
            try t.assertEqual(Int32(-1), child.pid, "waitpid(pid, &status, 0)")
            return
        }
        try t.assertTrue(wifexited(status) != 0, "WIFEXITED(status) (\(status))")
        try t.assertEqual(wexitstatus(status), 0, "WEXITSTATUS(status)")

        buffer.free()
    }
}
