import ABI
import Harness
import MachineInterface

// Tests with two device files (FIXTURE(hmm2)): migrate_mixed, snapshot,
// double_map.

extension HMMSuite {
    /// Builds a six-page range of assorted mappings (PROT_NONE, a hole, the
    /// zero page, read-only, read-write): migrating across PROT_NONE or a
    /// hole is EINVAL, pages 2-5 migrate to device 1, and device 0 cannot
    /// take page 5 from device 1 (ENOENT).
    static let migrateMixed = TestDefinition(.hmm2, "migrate_mixed") { t in
        let npages = 6
        let size = npages << t.pageShift
        let page = UInt64(t.pageSize)

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, .none, [.private, .anonymous]))
        let p = buffer.ptr

        var ret = try hmmMigrateSysToDev(t.fd1, buffer, npages)
        try t.assertEqual(ret, -Errno.EINVAL.rawValue, "ret")

        ret = cCall { try t.machine.munmap(buffer.ptr + page, length: t.pageSize) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmMigrateSysToDev(t.fd1, buffer, 3)
        try t.assertEqual(ret, -Errno.EINVAL.rawValue, "ret")

        // Page 2: the zero page, read-only.
        ret = cCall { try t.machine.mprotect(buffer.ptr + 2 * page, length: t.pageSize, protection: .read) }
        try t.assertEqual(ret, 0, "ret")
        let val = t.machine.loadInt32(buffer.ptr + 2 * page) &+ 3
        try t.assertEqual(val, 3, "val")

        // Page 3: written, then read-only.
        ret = cCall { try t.machine.mprotect(buffer.ptr + 3 * page, length: t.pageSize, protection: [.read, .write]) }
        try t.assertEqual(ret, 0, "ret")
        t.machine.storeInt32(buffer.ptr + 3 * page, val)
        ret = cCall { try t.machine.mprotect(buffer.ptr + 3 * page, length: t.pageSize, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        // Pages 4-5: written, read-write.
        ret = cCall { try t.machine.mprotect(buffer.ptr + 4 * page, length: 2 * t.pageSize, protection: [.read, .write]) }
        try t.assertEqual(ret, 0, "ret")
        t.machine.storeInt32(buffer.ptr + 4 * page, val)
        t.machine.storeInt32(buffer.ptr + 5 * page, val)

        buffer.ptr = p + 2 * page
        ret = try hmmMigrateSysToDev(t.fd1, buffer, 4)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, 4, "buffer->cpages")

        buffer.ptr = p + 5 * page
        ret = try hmmMigrateSysToDev(t.fd0, buffer, 1)
        try t.assertEqual(ret, -Errno.ENOENT.rawValue, "ret")
        buffer.ptr = p

        buffer.ptr = p
        buffer.free()
    }

    /// SNAPSHOT of seven assorted pages reports each mapping without
    /// faulting: error for PROT_NONE and the hole, zero|read, read, write,
    /// a local device page, and the other device's page (NONE for private
    /// devices, COHERENT_REMOTE|write for coherent ones).
    static let snapshot = TestDefinition(.hmm2, "snapshot") { t in
        let npages = 7
        let size = npages << t.pageShift
        let page = UInt64(t.pageSize)

        // The C test mallocs only npages bytes of mirror, yet each one-page
        // MIGRATE_TO_DEV below copies a whole page back into it (a heap
        // overrun glibc happens to survive). The port gives the mirror room
        // for that page; the snapshot still only uses the first npages bytes.
        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, max(npages, t.pageSize), .none, [.private, .anonymous]))
        let p = buffer.ptr

        var ret = cCall { try t.machine.munmap(buffer.ptr + page, length: t.pageSize) }
        try t.assertEqual(ret, 0, "ret")

        ret = cCall { try t.machine.mprotect(buffer.ptr + 2 * page, length: t.pageSize, protection: .read) }
        try t.assertEqual(ret, 0, "ret")
        let val = t.machine.loadInt32(buffer.ptr + 2 * page) &+ 3
        try t.assertEqual(val, 3, "val")

        ret = cCall { try t.machine.mprotect(buffer.ptr + 3 * page, length: t.pageSize, protection: [.read, .write]) }
        try t.assertEqual(ret, 0, "ret")
        t.machine.storeInt32(buffer.ptr + 3 * page, val)
        ret = cCall { try t.machine.mprotect(buffer.ptr + 3 * page, length: t.pageSize, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        ret = cCall { try t.machine.mprotect(buffer.ptr + 4 * page, length: 3 * t.pageSize, protection: [.read, .write]) }
        try t.assertEqual(ret, 0, "ret")
        t.machine.storeInt32(buffer.ptr + 4 * page, val)

        buffer.ptr = p + 5 * page
        ret = try hmmMigrateSysToDev(t.fd0, buffer, 1)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, 1, "buffer->cpages")

        buffer.ptr = p + 6 * page
        ret = try hmmMigrateSysToDev(t.fd1, buffer, 1)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, 1, "buffer->cpages")

        buffer.ptr = p
        ret = try hmmDmirrorCmd(t.fd0, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        let m = buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:))
        try t.assertEqual(m[0], .error, "m[0]")
        try t.assertEqual(m[1], .error, "m[1]")
        try t.assertEqual(m[2], SnapshotEntry(kind: .zero, access: .read), "m[2]")
        try t.assertEqual(m[3], .read, "m[3]")
        try t.assertEqual(m[4], .write, "m[4]")
        if !t.isCoherent {
            try t.assertEqual(m[5], SnapshotEntry(kind: .devicePrivateLocal, access: .write), "m[5]")
            try t.assertEqual(m[6], .none, "m[6]")
        } else {
            try t.assertEqual(m[5], SnapshotEntry(kind: .deviceCoherentLocal, access: .write), "m[5]")
            try t.assertEqual(m[6], SnapshotEntry(kind: .deviceCoherentRemote, access: .write), "m[6]")
        }

        buffer.free()
    }

    /// Two devices read the same read-only memory, each in one fault round;
    /// after device 1 migrates it, device 0 still reads it (faulting it back).
    static let doubleMap = TestDefinition(.hmm2, "double_map") { t in
        let npages = 6
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd0, .read, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        ret = try hmmDmirrorCmd(t.fd1, .read, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        ret = try hmmMigrateSysToDev(t.fd1, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        ret = try hmmDmirrorCmd(t.fd0, .read, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }
}
