import ABI

// mm/madvise.c: madvise(2).

extension MMStruct {
    /// madvise(2): do_madvise(). mmap_lock is taken for write where the advice changes
    /// VMAs, for read where it only zaps or marks pages (madvise_need_mmap_write()):
    /// DONTNEED runs alongside faults and migrations, which also hold it for read.
    /// (7.3 takes a per-VMA lock for DONTNEED; against mmap_lock it orders the same way.)
    func sysMadvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        guard let end = try userRange(address, length) else { return }
        let write = advice != .dontNeed && advice != .free
        if write { mmapLock.writeLock() } else { mmapLock.readLock() }
        defer { if write { mmapLock.writeUnlock() } else { mmapLock.readUnlock() } }
        // madvise_walk_vmas(): each VMA's part of the range in turn; a hole is ENOMEM at the
        // end, an error of one VMA ends the walk.
        let mapped = isFullyMapped(address, end)
        switch advice {
        case .hugePage, .noHugePage:
            for vma in vmas(in: address, end) {
                var newFlags = vma.flags
                if advice == .hugePage {
                    newFlags.remove(.nohugepage)
                    newFlags.insert(.hugepage)
                } else {
                    newFlags.remove(.hugepage)
                    newFlags.insert(.nohugepage)
                }
                // madvise_update_vma(): unchanged flags leave the VMA alone.
                if newFlags == vma.flags { continue }
                let s = max(vma.start, address), e = min(vma.end, end)
                // madvise_update_vma(): a split the VMA refuses (hugetlb) is the walk's error.
                for piece in try isolate(s, e) { piece.flags = newFlags }
                mergeVMAs(around: s, e)
            }
        case .dontNeed:
            for vma in vmas(in: address, end) {
                let s = max(vma.start, address)
                var e = min(vma.end, end)
                if vma.isHugetlb {
                    // madvise_dontneed_free_valid_vma(): the start must be huge page aligned, and
                    // the end is rounded down so that only whole huge pages are dropped.
                    guard s & (hugetlbPageSize - 1) == 0 else { throw .EINVAL }
                    e &= ~(hugetlbPageSize - 1)
                    if s >= e { continue }
                } else {
                    splitHugePMDAddress(s)
                    splitHugePMDAddress(e)
                }
                withInvalidation(.clear, s, e) { ptl.withLock { zapPageRangeLocked(s, e) } }
            }
        case .free:
            // MADV_FREE only marks clean anonymous pages lazily freeable; device
            // entries are skipped. Without memory pressure nothing is discarded.
            // madvise_dontneed_free_valid_vma(): never on hugetlb.
            for vma in vmas(in: address, end) where !vma.isAnonymous { throw .EINVAL }
        case .collapse:
            try collapse(address, end)
        default:
            throw .EINVAL
        }
        if !mapped { throw .ENOMEM }
    }
}
