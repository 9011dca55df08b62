import ABI
import Harness
import MachineInterface

// fork() and copy-on-write with device access (hmm-tests.c:
// anon_write_child, anon_write_child_shared, hmm_cow_in_device).

extension HMMSuite {
    /// Waits for a child the way the parent side of anon_write_child* does:
    /// `waitpid(pid, &ret, 0); ASSERT_EQ(WIFEXITED(ret), 1);`.
    ///
    /// A C child that fails an ASSERT aborts, so WIFEXITED alone catches it;
    /// a Swift child reports the same failure as exit status 1, so the port
    /// also requires status 0 to keep the C check's meaning.
    static func waitForChild(_ t: TestContext, _ child: any ChildProcess,
                             fileID: StaticString = #fileID, line: UInt = #line) throws {
        let status = (try? child.wait()) ?? .signaled(Signal(rawValue: 0))
        try t.assertEqual(wifexited(status), 1, "WIFEXITED(ret) (\(status))", fileID: fileID, line: line)
        try t.assertEqual(wexitstatus(status), 0, "WEXITSTATUS(ret)", fileID: fileID, line: line)
    }

    /// For private anonymous memory (4 MiB, or one THP), optionally migrated
    /// to the device first: a child's device WRITE through its own dmirror
    /// file copies-on-write, so the child sees the mirror's values and the
    /// parent keeps its own.
    static let anonWriteChild = TestDefinition(.hmm, "anon_write_child") { t in
        for migrate in [false, true] {
            for useTHP in [false, true] {
                let npages = HMMConstants.align(useTHP ? t.machine.pmdPageSize : HMMConstants.bufferSize,
                                                t.pageSize) >> t.pageShift
                try t.assertNotEqual(npages, 0, "npages")
                let size = npages << t.pageShift

                let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size * 2, size, [.read, .write], [.private, .anonymous]))
                let oldPtr = buffer.ptr
                if useTHP {
                    let map = HMMConstants.align(buffer.ptr, size)
                    let ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
                    try t.assertEqual(ret, 0, "ret")
                    buffer.ptr = map
                }

                t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }
                buffer.fillMirror(count: size / 4) { ival(-$0) }

                if migrate {
                    let ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
                    try t.assertEqual(ret, 0, "ret")
                    try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
                }

                let child = try forkChild(t) { childMachine in
                    let mine = buffer.forkedCopy(in: childMachine)

                    try t.assertCPUInts(childMachine, mine.ptr, count: size / 4) { ival($0) }
                    if !migrate {
                        try t.assertMirrorInts(mine, count: size / 4, "ptr") { ival(-$0) }
                    }

                    // The child's own file, bound to the child's mm.
                    let childFd = try? childMachine.openMirror(unit: 0)
                    try t.assertGreaterOrEqual(childFd == nil ? -1 : 3, 0, "child_fd")

                    let ret = try hmmDmirrorCmd(childFd!, .write, mine, npages)
                    try t.assertEqual(ret, 0, "ret")
                    try t.assertEqual(mine.cpages, UInt64(npages), "buffer->cpages")
                    try t.assertEqual(mine.faults, 1, "buffer->faults")

                    if !migrate {
                        try t.assertCPUInts(childMachine, mine.ptr, count: size / 4) { ival(-$0) }
                    }

                    try? childFd!.close()
                    return 0
                }

                try waitForChild(t, child)

                try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

                buffer.ptr = oldPtr
                buffer.free()
            }
        }
    }

    /// For shared anonymous memory, a child's device WRITE is seen by the
    /// parent: no copy-on-write.
    static let anonWriteChildShared = TestDefinition(.hmm, "anon_write_child_shared") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.shared, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }
        buffer.fillMirror(count: size / 4) { ival(-$0) }

        let child = try forkChild(t) { childMachine in
            let mine = buffer.forkedCopy(in: childMachine)

            try t.assertCPUInts(childMachine, mine.ptr, count: size / 4) { ival($0) }
            try t.assertMirrorInts(mine, count: size / 4, "ptr") { ival(-$0) }

            let childFd = try? childMachine.openMirror(unit: 0)
            try t.assertGreaterOrEqual(childFd == nil ? -1 : 3, 0, "child_fd")

            let ret = try hmmDmirrorCmd(childFd!, .write, mine, npages)
            try t.assertEqual(ret, 0, "ret")
            try t.assertEqual(mine.cpages, UInt64(npages), "buffer->cpages")
            try t.assertEqual(mine.faults, 1, "buffer->faults")

            try t.assertCPUInts(childMachine, mine.ptr, count: size / 4) { ival(-$0) }

            try? childFd!.close()
            return 0
        }

        try waitForChild(t, child)

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival(-$0) }
    }

    /// Device pages shared with a forked child (which spins until killed):
    /// the parent's CPU writes get private system-memory copies, so the
    /// snapshot afterwards shows plain writable pages.
    static let hmmCowInDevice = TestDefinition(.hmm, "hmm_cow_in_device") { t in
        let npages = 4
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        // The child waits for SIGKILL from the parent, spinning like the C child's `while (1) {}`.
        let child = try forkChild(t) { _ in while true {} }

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        let killed: Int32 = (try? child.kill(.kill)) != nil ? 0 : -1
        t.expectEqual(killed, 0, "kill(pid, SIGKILL)")
        var status = ExitStatus.exited(0)
        var waited: Int32 = -1
        if let result = try? child.wait() {
            status = result
            waited = child.pid
        }
        t.expectEqual(waited, child.pid, "waitpid(pid, &status, 0)")
        t.expectTrue(wifsignaled(status) != 0, "WIFSIGNALED(status) != 0 (\(status))")
        t.expectEqual(wtermsig(status), Signal.kill.rawValue, "WTERMSIG(status)")

        ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertElements(buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:)), "m") { _ in .write }

        buffer.free()
    }
}
