import ABI
import Harness
import MachineInterface

// A device read of userfaultfd-managed memory (hmm-tests.c: userfaultfd_read).

extension HMMSuite {
    /// READ_UNLOCKED of four missing pages registered with userfaultfd: the
    /// fault path drops mmap_lock so a handler thread can resolve each fault
    /// with UFFDIO_COPY of a 0xAB page, and the device reads those bytes.
    static let userfaultfdRead = TestDefinition(.hmm, "userfaultfd_read", needs: [.userfaultfd]) { t in
        let npages = 4
        let size = npages << t.pageShift
        let pageSize = t.pageSize

        // userfaultfd() + UFFDIO_API: the machine does both in one call, so a
        // failed API handshake (an ASSERT in C) also ends up as the skip.
        let uffd: any UserfaultFile
        do {
            uffd = try t.machine.userfaultfd()
        } catch {
            throw t.skip("userfaultfd not available")
        }

        // The C test mallocs the buffer struct and mirror by hand (ASSERT_NE
        // on each, which cannot fail here) and maps the range itself.
        let buffer = HMMBuffer(t.machine, mirrorSize: size, size: size)

        let mapped = try? t.machine.mmap(address: nil, length: size, protection: [.read, .write],
                                         flags: [.private, .anonymous], source: .anonymous, offset: 0)
        try t.assertTrue(mapped != nil, "buffer->ptr != MAP_FAILED")
        buffer.ptr = mapped!

        var ret: Int32 = 0
        do {
            try uffd.registerMissing(buffer.ptr, length: size)
        } catch {
            ret = -1
        }
        try t.assertEqual(ret, 0, "ret")

        let stop: any EventFile
        do {
            stop = try t.machine.eventfd()
        } catch {
            try t.assertGreaterOrEqual(Int32(-1), 0, "stop_fd")
            return
        }

        let thread: any MachineThread
        do throws(Errno) {
            thread = try t.machine.startThread {
                // uffd_handler_thread(): resolve faults until told to stop or anything fails.
                let page = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: pageSize)
                defer { page.deallocate() }
                while true {
                    guard let address = try? uffd.waitForFault(stop: stop) else { break }
                    page.initializeMemory(as: UInt8.self, repeating: 0xAB)
                    do {
                        try uffd.copy(to: address & ~UInt64(pageSize - 1), from: UnsafeRawBufferPointer(page))
                    } catch {
                        break
                    }
                }
            }
        } catch {
            try t.assertEqual(error.rawValue, 0, "ret")
            return
        }
        // If an ASSERT below stops the case, still stop and reap the handler.
        var joined = false
        defer {
            if !joined {
                try? stop.signal(1)
                thread.join()
            }
        }

        ret = try hmmDmirrorCmd(t.fd, .readUnlocked, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertElements(buffer.mirrorBytes.prefix(size), "ptr") { _ in UInt8(0xAB) }

        let nwrite = (try? stop.signal(1)) != nil ? 8 : -1
        try t.assertEqual(nwrite, 8, "nwrite")
        thread.join()
        joined = true
        stop.close()
        uffd.close()
        buffer.free()
    }
}
