import ABI
import Harness
import MachineInterface

// get_user_pages on device memory through the gup_test debugfs driver
// (hmm-tests.c: hmm_gup_test).

extension HMMSuite {
    /// gup_test_exec(): one gup_test ioctl, FOLL_WRITE always set; 0 or the errno.
    private static func gupTestExec(_ gup: any GupTestFile, _ address: UInt64, _ operation: GupTestOperation,
                                    _ npages: Int, _ size: Int, _ flags: GupFlags) -> Int32 {
        do {
            try gup.run(operation, address: address, size: size, flags: GupFlags.write.union(flags), pagesPerCall: npages)
            return 0
        } catch {
            return error.rawValue
        }
    }

    /// Four pages migrated to the device, then one taken by each of
    /// get_user_pages, GUP-fast, pin-fast(LONGTERM) and pin(LONGTERM): all
    /// succeed; the snapshot shows the pages pinned long-term (and, for
    /// device-private memory, all of them) back in system memory, and the
    /// data is intact.
    static let hmmGupTest = TestDefinition(.hmm, "hmm_gup_test", needs: [.gupTest]) { t in
        let gup: any GupTestFile
        do {
            gup = try t.machine.openGupTest()
        } catch {
            throw t.skip("Skipping test, could not find gup_test driver")
        }

        let npages = 4
        let size = npages << t.pageShift
        let page = UInt64(t.pageSize)

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        try t.assertEqual(gupTestExec(gup, buffer.ptr, .gupBasicTest, 1, t.pageSize, []), 0,
                          "gup_test_exec(GUP_BASIC_TEST)")
        try t.assertEqual(gupTestExec(gup, buffer.ptr + 1 * page, .gupFastBenchmark, 1, t.pageSize, []), 0,
                          "gup_test_exec(GUP_FAST_BENCHMARK)")
        try t.assertEqual(gupTestExec(gup, buffer.ptr + 2 * page, .pinFastBenchmark, 1, t.pageSize, .longterm), 0,
                          "gup_test_exec(PIN_FAST_BENCHMARK)")
        try t.assertEqual(gupTestExec(gup, buffer.ptr + 3 * page, .pinLongtermBenchmark, 1, t.pageSize, []), 0,
                          "gup_test_exec(PIN_LONGTERM_BENCHMARK)")

        ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        let m = buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:))
        if t.isCoherent {
            try t.assertEqual(m[0], SnapshotEntry(kind: .deviceCoherentLocal, access: .write), "m[0]")
            try t.assertEqual(m[1], SnapshotEntry(kind: .deviceCoherentLocal, access: .write), "m[1]")
        } else {
            try t.assertEqual(m[0], .write, "m[0]")
            try t.assertEqual(m[1], .write, "m[1]")
        }
        try t.assertEqual(m[2], .write, "m[2]")
        try t.assertEqual(m[3], .write, "m[3]")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        gup.close()
        buffer.free()
    }
}
