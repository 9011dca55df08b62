import ABI
import Harness
import MachineInterface

// Transparent huge pages and hugetlbfs (hmm-tests.c: anon_write_huge,
// anon_write_hugetlbfs, compound, migrate_anon_huge_empty,
// migrate_anon_huge_zero, migrate_anon_huge_free, migrate_anon_huge_fault,
// migrate_anon_huge_err, migrate_anon_huge_zero_err).

extension HMMSuite {
    /// A device WRITE into a PMD-aligned MADV_HUGEPAGE region fills the
    /// whole huge page in one fault round.
    static let anonWriteHuge = TestDefinition(.hmm, "anon_write_huge", needs: [.transparentHugePages]) { t in
        var size = 2 * t.machine.pmdPageSize

        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous]))
        size /= 2
        let npages = size >> t.pageShift
        let map = HMMConstants.align(buffer.ptr, size)
        let ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        let oldPtr = buffer.ptr
        buffer.ptr = map

        buffer.fillMirror(count: size / 4) { ival($0) }

        let written = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(written, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// A device WRITE into a MAP_HUGETLB mapping (one default-size huge page
    /// covering at least 2 MiB) lands in one fault round.
    static let anonWriteHugetlbfs = TestDefinition(.hmm, "anon_write_hugetlbfs", needs: [.hugetlbPages]) { t in
        let defaultHsize = t.machine.defaultHugePageSize

        if t.machine.freeHugePages() == 0 {
            throw t.skip("Not enough huge pages")
        }

        let size = HMMConstants.align(HMMConstants.twoMeg, defaultHsize)
        let npages = size >> t.pageShift

        guard let buffer = hmmBufferAlloc(t.machine, size, size, [.read, .write], [.private, .anonymous, .hugetlb]) else {
            throw t.skip("Huge page could not be allocated")
        }

        buffer.fillMirror(count: size / 4) { ival($0) }

        let ret = try hmmDmirrorCmd(t.fd, .write, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")
        try t.assertEqual(buffer.faults, 1, "buffer->faults")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        try? t.machine.munmap(buffer.ptr, length: buffer.size)
        buffer.ptr = 0
        buffer.free()
    }

    /// SNAPSHOT of a populated hugetlb page reports every base page at the
    /// same large level (PMD or PUD, taken from the first entry), writable,
    /// then readable only after mprotect(PROT_READ).
    static let compound = TestDefinition(.hmm, "compound", needs: [.hugetlbPages]) { t in
        let defaultHsize = t.machine.defaultHugePageSize

        if t.machine.freeHugePages() == 0 {
            throw t.skip("Not enough huge pages")
        }

        let size = HMMConstants.align(HMMConstants.twoMeg, defaultHsize)
        let npages = size >> t.pageShift

        guard let buffer = hmmBufferAlloc(t.machine, size, npages, [.read, .write], [.private, .anonymous, .hugetlb]) else {
            throw t.skip("Huge page could not be allocated")
        }

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        // The level is whatever the first page shows; every page must match it.
        var m = buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:))
        var level: SnapshotEntry.Level = m[0].rawValue & SnapshotEntry.Level.pud.bits != 0 ? .pud : .pmd
        var prot = SnapshotEntry(kind: .normal, access: .write, level: level)
        try t.assertElements(m, "m") { _ in prot }

        ret = cCall { try t.machine.mprotect(buffer.ptr, length: size, protection: .read) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        m = buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:))
        level = m[0].rawValue & SnapshotEntry.Level.pud.bits != 0 ? .pud : .pmd
        prot = SnapshotEntry(kind: .normal, access: .read, level: level)
        try t.assertElements(m, "m") { _ in prot }

        try? t.machine.munmap(buffer.ptr, length: buffer.size)
        buffer.ptr = 0
        buffer.free()
    }

    /// Sets up the THP tests' buffer: `mmapSize` bytes mapped, the mirror
    /// memset to 0xFF, and the PMD-aligned address inside it.
    private static func hugeBuffer(_ t: TestContext, mmapSize: Int, mirrorSize: Int, protection: Protection,
                                   fileID: StaticString = #fileID, line: UInt = #line) throws -> HMMBuffer {
        let buffer = try t.assertBuffer(hmmBufferAlloc(t.machine, mmapSize, mirrorSize, protection, [.private, .anonymous]),
                                        fileID: fileID, line: line)
        buffer.setMirrorBytes(0xFF, count: mirrorSize)
        return buffer
    }

    /// MIGRATE_TO_DEV of an untouched read-only THP region migrates every
    /// page and reads back zeros.
    static let migrateAnonHugeEmpty = TestDefinition(.hmm, "migrate_anon_huge_empty", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: size, protection: .read)

        let npages = size >> t.pageShift
        let map = HMMConstants.align(buffer.ptr, size)
        let ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        let oldPtr = buffer.ptr
        buffer.ptr = map

        let migrated = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(migrated, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { _ in 0 }

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// A CPU read maps the huge zero page; migrating it moves every page,
    /// reads zeros, and the CPU faults zeros back.
    static let migrateAnonHugeZero = TestDefinition(.hmm, "migrate_anon_huge_zero", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: size, protection: .read)

        let npages = size >> t.pageShift
        let map = HMMConstants.align(buffer.ptr, size)
        let ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        let oldPtr = buffer.ptr
        buffer.ptr = map

        let val = t.machine.loadInt32(buffer.ptr)
        try t.assertEqual(val, 0, "val")

        let migrated = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(migrated, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { _ in 0 }

        try t.assertCPUInts(buffer.ptr, count: size / 4) { _ in 0 }

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// A populated THP migrated to the device can be MADV_FREEd.
    static let migrateAnonHugeFree = TestDefinition(.hmm, "migrate_anon_huge_free", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: size, protection: [.read, .write])

        let npages = size >> t.pageShift
        let map = HMMConstants.align(buffer.ptr, size)
        var ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        let oldPtr = buffer.ptr
        buffer.ptr = map

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        ret = cCall { try t.machine.madvise(map, length: size, advice: .free) }
        try t.assertEqual(ret, 0, "ret")

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// A MADV_COLLAPSEd THP migrates whole: for device-private memory the
    /// snapshot shows a writable local device PMD and pagemap shows swap
    /// (non-present) entries; the CPU then faults the data back.
    static let migrateAnonHugeFault = TestDefinition(.hmm, "migrate_anon_huge_fault", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: size, protection: [.read, .write])

        let npages = size >> t.pageShift
        let map = HMMConstants.align(buffer.ptr, size)
        let oldPtr = buffer.ptr
        buffer.ptr = map

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        var ret = cCall { try t.machine.madvise(map, length: size, advice: .collapse) }
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        if !t.isCoherent {
            ret = try hmmDmirrorCmd(t.fd, .snapshot, buffer, npages)
            try t.assertEqual(ret, 0, "ret")
            try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

            let m = buffer.mirrorBytes.prefix(npages).map(SnapshotEntry.init(rawValue:))
            try t.assertElements(m, "m") { _ in SnapshotEntry(kind: .devicePrivateLocal, access: .write, level: .pmd) }

            for i in 0..<npages {
                let entry: UInt64
                do throws(Errno) {
                    entry = try t.machine.pagemapEntry(buffer.ptr + UInt64(i * t.pageSize))
                } catch {
                    // /proc/self/pagemap could not be opened or read.
                    try t.assertGreaterOrEqual(-error.rawValue, 0, "pagemap_fd")
                    return
                }
                try t.assertNotEqual(entry & Pagemap.swap, 0, "entry & PM_SWAP")
                try t.assertTrue(entry & Pagemap.present == 0, "!PAGEMAP_PRESENT(entry) (entry 0x\(String(entry, radix: 16)))")
            }
        }

        try t.assertCPUInts(buffer.ptr, count: size / 4) { ival($0) }

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// With FAIL_ALLOC set, a THP still migrates (split into base pages) and
    /// single pages fault back; after a fresh mapping migrates as a THP, a
    /// failed allocation on the way back still lets MIGRATE_TO_SYS and CPU
    /// access succeed.
    static let migrateAnonHugeErr = TestDefinition(.hmm, "migrate_anon_huge_err", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: 2 * size, protection: [.read, .write])

        var oldPtr = buffer.ptr

        let npages = size >> t.pageShift
        var map = HMMConstants.align(oldPtr, size)
        var ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        buffer.ptr = map

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        ret = try hmmDmirrorCmd(t.fd, .flags, buffer, Int(DmirrorFlags.failAlloc.rawValue))
        try t.assertEqual(ret, 0, "ret")
        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { ival($0) }

        // One base page back to the CPU.
        var ptr = buffer.ptr
        try t.assertEqual(t.machine.loadInt32(ptr + 2048 * 4), 2048, "ptr[2048]")

        // Start over with a fresh mapping.
        ret = cCall { try t.machine.munmap(oldPtr, length: 2 * size) }
        try t.assertEqual(ret, 0, "ret")
        let remapped = try? t.machine.mmap(address: nil, length: 2 * size, protection: [.read, .write],
                                           flags: [.private, .anonymous], source: .anonymous, offset: 0)
        try t.assertTrue(remapped != nil, "old_ptr != MAP_FAILED")
        oldPtr = remapped!
        map = HMMConstants.align(oldPtr, size)
        ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        buffer.ptr = map

        t.machine.storeInt32s(buffer.ptr, count: size / 4) { ival($0) }

        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        // The allocation on the way back fails once.
        ret = try hmmDmirrorCmd(t.fd, .flags, buffer, Int(DmirrorFlags.failAlloc.rawValue))
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmMigrateDevToSys(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        ptr = buffer.ptr
        try t.assertEqual(t.machine.loadInt32(ptr + 2048 * 4), 2048, "ptr[2048]")

        buffer.ptr = oldPtr
        buffer.free()
    }

    /// The FAIL_ALLOC path for the huge zero page: migration still reports
    /// every page and zeros, and zeros fault back, both for a never-touched
    /// region and for one whose zero THP was mapped by a CPU read.
    static let migrateAnonHugeZeroErr = TestDefinition(.hmm, "migrate_anon_huge_zero_err", needs: [.transparentHugePages]) { t in
        let size = t.machine.pmdPageSize

        let buffer = try hugeBuffer(t, mmapSize: 2 * size, mirrorSize: 2 * size, protection: .read)

        var oldPtr = buffer.ptr

        let npages = size >> t.pageShift
        var map = HMMConstants.align(oldPtr, size)
        var ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        buffer.ptr = map

        ret = try hmmDmirrorCmd(t.fd, .flags, buffer, Int(DmirrorFlags.failAlloc.rawValue))
        try t.assertEqual(ret, 0, "ret")
        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertMirrorInts(buffer, count: size / 4, "ptr") { _ in 0 }

        let ptr = buffer.ptr
        try t.assertEqual(t.machine.loadInt32(ptr + 2048 * 4), 0, "ptr[2048]")

        ret = cCall { try t.machine.munmap(oldPtr, length: 2 * size) }
        try t.assertEqual(ret, 0, "ret")
        let remapped = try? t.machine.mmap(address: nil, length: 2 * size, protection: .read,
                                           flags: [.private, .anonymous], source: .anonymous, offset: 0)
        try t.assertTrue(remapped != nil, "old_ptr != MAP_FAILED")
        oldPtr = remapped!
        map = HMMConstants.align(oldPtr, size)
        ret = cCall { try t.machine.madvise(map, length: size, advice: .hugePage) }
        try t.assertEqual(ret, 0, "ret")
        buffer.ptr = map

        // As in the C test, this read goes through `ptr`, the previous
        // mapping's aligned address (the new mapping normally lands on it).
        ret = t.machine.loadInt32(ptr)
        try t.assertEqual(ret, 0, "ret")

        ret = try hmmDmirrorCmd(t.fd, .flags, buffer, Int(DmirrorFlags.failAlloc.rawValue))
        try t.assertEqual(ret, 0, "ret")
        ret = try hmmMigrateSysToDev(t.fd, buffer, npages)
        try t.assertEqual(ret, 0, "ret")
        try t.assertEqual(buffer.cpages, UInt64(npages), "buffer->cpages")

        try t.assertCPUInts(buffer.ptr, count: size / 4) { _ in 0 }

        buffer.ptr = oldPtr
        buffer.free()
    }
}
