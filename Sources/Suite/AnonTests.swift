import ABI
import Harness
import MachineInterface

// Device reads and writes of private anonymous memory (hmm-tests.c:
// open_close, anon_read, anon_read_prot, anon_write, anon_write_prot,
// anon_read_multiple, anon_teardown).

extension HMMSuite {
    /// The fixture alone: the device opens in setup and closes cleanly in teardown.
    static let openClose = TestDefinition(.hmm, "open_close") { _ in }

    /// A device READ of a read-only private mapping whose first page is
    /// pte_none and second the shared zero page: every page is copied, in one
    /// fault round, zeros first and the CPU's data after.
    static let anonRead = TestDefinition(.hmm, "anon_read") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        // Pages 0 and 1 stay untouched; the rest hold their int index.
        let first = 2 * t.pageSize / 4
        t.machine.storeInt32s(buffer.ptr + UInt64(first * 4), count: size / 4 - first) { ival(first + $0) }

        var ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        // A CPU read of page 1 maps the zero page there.
        let val = t.machine.loadInt32(buffer.ptr + UInt64(t.pageSize))
        try t.assertEqual(val, 0, "val")

        ret = try hmmDmirrorCmd(t.fd, .read, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        let ints = buffer.mirrorInts
        try t.assertInts(UnsafeBufferPointer(rebasing: ints[0..<first]), "ptr") { _ in 0 }
        try t.assertInts(UnsafeBufferPointer(rebasing: ints[first..<(size / 4)]), "ptr") { ival(first + $0) }

        buffer.free()
    }

    /// A device READ of a PROT_NONE mapping fails with EFAULT, leaving both the
    /// memory and the caller's mirror untouched.
    static let anonReadProt = TestDefinition(.hmm, "anon_read_prot") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }
        buffer.fillMirror(count: size / 4) { ival(-$0) }

        var ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .none) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd, .read, buffer, npages)
        try t.assertEqual(ret, -Errno.EFAULT.rawValue, "ret")

        ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .read) }
        try t.assertEqual(ret, 0, "ret")
        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival(-$0) }

        buffer.free()
    }

    /// A device WRITE into fresh private anonymous memory populates it with
    /// the mirror's data in one fault round.
    static let anonWrite = TestDefinition(.hmm, "anon_write") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        buffer.fillMirror(count: size / 4) { ival($0) }

        let ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        buffer.free()
    }

    /// A device WRITE to a read-only mapping fails with EPERM and changes
    /// nothing; after mprotect(RW) the same WRITE replaces the zero page.
    static let anonWriteProt = TestDefinition(.hmm, "anon_write_prot") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, .read, [.private, .anonymous]))

        // One device read maps the zero page at page 0.
        var ret = try hmmDmirrorCmd(t.fd, .read, buffer, 1)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, 1, "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        buffer.fillMirror(count: size / 4) { ival($0) }

        ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, -Errno.EPERM.rawValue, "ret")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { _ in 0 }

        ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: [.write, .read]) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        buffer.free()
    }

    /// Ten fresh buffers, each read by the device in one round with the
    /// round-specific data (i + c).
    static let anonReadMultiple = TestDefinition(.hmm, "anon_read_multiple") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        for c in 0..<HMMConstants.ntimes {
            let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

            t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0 + c) }

            let ret = try hmmDmirrorCmd(t.fd, .read, buffer, npages)
            try t.assertEqual(ret, 0, "ret")
            try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
            try t.assertEqual(buffer.faults, 1, "buffer->faults")

            try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0 + c) }

            buffer.free()
        }
    }

    /// A device READ racing with a munmap of the buffer's second half (from
    /// another thread, after a random 0-32 us delay): any error is
    /// acceptable, but a READ that succeeds must have copied everything.
    static let anonTeardown = TestDefinition(.hmm, "anon_teardown") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        for c in 0..<HMMConstants.ntimes {
            let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

            t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0 + c) }

            let machine = t.machine
            let thread: any MachineThread
            do throws(Errno) {
                thread = try machine.startThread {
                    // unmap_buffer(): wait a little, drop the second half, forget ptr.
                    machine.sleep(nanoseconds: UInt64(machine.random() % 32000))
                    try? machine.munmap(buffer.ptr + UInt64(buffer.size / 2), length: buffer.size / 2)
                    buffer.ptr = 0
                }
            } catch {
                try t.assertEqual(error.rawValue, 0, "rc")
                return
            }

            let rc = try hmmDmirrorCmd(t.fd, .read, buffer, npages)
            if rc == 0 {
                try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
                try t.assertEqual(buffer.faults, 1, "buffer->faults")

                try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0 + c) }
            }

            thread.join()
            buffer.free()
        }
    }
}
