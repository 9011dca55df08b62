import ABI
import Harness
import MachineInterface

// Migration of anonymous and file memory to device memory and back
// (hmm-tests.c: migrate, migrate_file_private, migrate_fault,
// migrate_release, migrate_shared, migrate_multiple,
// migrate_partial_unmap_fault, migrate_remap_fault).

extension HMMSuite {
    /// MIGRATE_TO_DEV of a populated private anonymous buffer moves every
    /// page and reads the data back intact.
    static let migrate = TestDefinition(.hmm, "migrate") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        let ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }

    /// MIGRATE_TO_DEV works on the anonymous COW copies of a private file
    /// mapping the CPU has written.
    static let migrateFilePrivate = TestDefinition(.hmm, "migrate_file_private") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let file = try? t.machine.createTemporaryFile(size: size)
        try t.assertGreaterOrEqual(file == nil ? -1 : 3, 0, "fd")

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], .private, .file(file!)))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        let ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }

    /// After a migration, CPU reads of the first half bring it back; a second
    /// MIGRATE_TO_DEV of the mixed range still reports every page.
    static let migrateFault = TestDefinition(.hmm, "migrate_fault") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        // Touch (and check) the first half from the CPU.
        try t.assertCPUInts(buffer.ptr, count: size / 8) { ival($0) }

        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        buffer.free()
    }

    /// RELEASE evicts the device's pages; the CPU then reads the first half
    /// of the data back unchanged.
    static let migrateRelease = TestDefinition(.hmm, "migrate_release") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        ret = try hmmDmirrorCmd(t.fd, .release, buffer, npages)
        try t.assertEqual(ret, 0, "ret")

        try t.assertCPUInts(buffer.ptr, count: size / 8) { ival($0) }

        buffer.free()
    }

    /// Shared anonymous memory cannot be migrated: the read-back finds no
    /// device page and the command fails with ENOENT.
    static let migrateShared = TestDefinition(.hmm, "migrate_shared") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.shared, .anonymous]))

        let ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, -Errno.ENOENT.rawValue, "ret")

        buffer.free()
    }

    /// Ten round trips: migrate to the device, then back (by CPU faults for
    /// device-private memory, by MIGRATE_TO_SYS for coherent memory).
    static let migrateMultiple = TestDefinition(.hmm, "migrate_multiple") { t in
        let npages = try t.standardPageCount()
        let size = npages << t.pageShift

        for _ in 0..<HMMConstants.ntimes {
            let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))

            t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

            var ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
            try t.assertEqual(ret, 0, "ret")
            try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

            try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

            if t.isCoherent {
                ret = try hmmMigrateDevToSys(t.fd, buffer, npages)
                try t.assertEqual(ret, 0, "ret")
                try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
            }

            try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

            buffer.free()
        }
    }

    /// Migrate a PMD-sized region (with and without THP), unmap half of it at
    /// three offsets, and fault the surviving pages back with their data.
    static let migratePartialUnmapFault = TestDefinition(.hmm, "migrate_partial_unmap_fault") { t in
        var size = t.machine.pmdPageSize
        if size == 0 { size = HMMConstants.twoMeg }

        let unmapSize = size / 2
        let offsets = [0, size / 4, size / 2]

        for useTHP in [false, true] {
            for offset in offsets {
                let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, 2 * size, size, [.read, .write], [.private, .anonymous]))
                buffer.setMirrorBytes(0xFF, count: size)
                let npages = size >> t.pageShift
                let map = HMMConstants.align(buffer.ptr, size)
                let ret = cCall { try t.machine.madvise(map, length: size, advice: useTHP ? .hugePage : .noHugePage) }
                try t.assertEqual(ret, 0, "ret")
                let oldPtr = buffer.ptr
                buffer.ptr = map

                t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

                let migrated = try hmmMigrateSysToDev(t.fd, buffer, npages)
                try t.assertEqual(migrated, 0, "ret")
                try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

                try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

                try? t.machine.munmap(buffer.ptr + UInt64(offset), length: unmapSize)

                // Only the ints outside the hole are read, in ascending order.
                let holeStart = offset / 4
                let holeEnd = (offset + unmapSize) / 4
                if holeStart > 0 {
                    try t.assertCPUInts(buffer.ptr, count: holeStart) { ival($0) }
                }
                if holeEnd < size / 4 {
                    try t.assertCPUInts(buffer.ptr + UInt64(holeEnd * 4), count: size / 4 - holeEnd) { ival(holeEnd + $0) }
                }

                buffer.ptr = oldPtr
                buffer.free()
            }
        }
    }

    /// mremap(MAYMOVE|FIXED[, DONTUNMAP]) of a PMD-sized region before or
    /// after migrating it, with and without THP, to three destination
    /// offsets: the data follows the mapping and faults back intact.
    static let migrateRemapFault = TestDefinition(.hmm, "migrate_remap_fault") { t in
        var size = t.machine.pmdPageSize
        if size == 0 { size = HMMConstants.twoMeg }

        let offsets = [0, size / 4, size / 2]
        var newPtr: UInt64 = 0

        for before in [false, true] {
            for dontUnmap in [false, true] {
                for useTHP in [false, true] {
                    for offset in offsets {
                        var flags: RemapFlags = [.mayMove, .fixed]
                        if dontUnmap { flags.insert(.dontUnmap) }

                        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, 8 * size, size, [.read, .write], [.private, .anonymous]))
                        buffer.setMirrorBytes(0xFF, count: size)
                        let npages = size >> t.pageShift
                        let map = HMMConstants.align(buffer.ptr, size)
                        let ret = cCall { try t.machine.madvise(map, length: size, advice: useTHP ? .hugePage : .noHugePage) }
                        try t.assertEqual(ret, 0, "ret")
                        let oldPtr = buffer.ptr
                        try? t.machine.munmap(map + UInt64(size), length: size * 2)
                        buffer.ptr = map

                        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

                        let remap = { () throws -> Void in
                            let moved = try? t.machine.mremap(map, oldSize: size, newSize: size, flags: flags,
                                                              newAddress: map + UInt64(size + offset))
                            try t.assertTrue(moved != nil, "new_ptr != MAP_FAILED")
                            newPtr = moved!
                            buffer.ptr = newPtr
                        }

                        if before { try remap() }

                        let migrated = try hmmMigrateSysToDev(t.fd, buffer, npages)
                        try t.assertEqual(migrated, 0, "ret")
                        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

                        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

                        if !before { try remap() }

                        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

                        try? t.machine.munmap(newPtr, length: size)
                        buffer.ptr = oldPtr
                        buffer.free()
                    }
                }
            }
        }
    }
}
