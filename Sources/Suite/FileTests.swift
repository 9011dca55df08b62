import ABI
import Harness
import MachineInterface

// Device access to file-backed and device-file mappings (hmm-tests.c:
// file_read, file_write, mixedmap).

extension HMMSuite {
    /// A device READ of a shared, read-only tmpfs mapping sees what pwrite()
    /// put in the file.
    static let fileRead = TestDefinition(.hmm, "file_read") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let file = try? t.machine.createTemporaryFile(size: size)
        try t.assertGreaterOrEqual(file == nil ? -1 : 3, 0, "fd")

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, .read, .shared, .file(file!)))

        buffer.fillMirror(count: size / 4) { ival($0) }
        let len = (try? file!.pwrite(UnsafeRawBufferPointer(rebasing: buffer.mirror[0..<size]), offset: 0)) ?? -1
        try t.assertEqual(len, size, "len")
        buffer.setMirrorBytes(0, count: size)

        let ret = try hmmDmirrorCmd(t.fd, .read, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }

    /// A device WRITE to a shared tmpfs mapping is visible through the
    /// mapping and through pread() of the file.
    static let fileWrite = TestDefinition(.hmm, "file_write") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let file = try? t.machine.createTemporaryFile(size: size)
        try t.assertGreaterOrEqual(file == nil ? -1 : 3, 0, "fd")

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], .shared, .file(file!)))

        buffer.fillMirror(count: size / 4) { ival($0) }

        let ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        let len = (try? file!.pread(into: UnsafeMutableRawBufferPointer(rebasing: buffer.mirror[0..<size]), offset: 0)) ?? -1
        try t.assertEqual(len, size, "len")
        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }

    /// A private mapping of the dmirror device file (zeroed pages inserted by
    /// the driver) snapshots as a plain read-only page.
    static let mixedmap = TestDefinition(.hmm, "mixedmap") { t in
        let npages = 1
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, npages, [.read, .write], .private, .device(t.fd)))

        let ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        let m = buffer.mirrorBytes
        try t.assertEqual(SnapshotEntry(rawValue: m[0]), .read, "m[0]")

        buffer.free()
    }
}
