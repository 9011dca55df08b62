import ABI

// mm/mprotect.c: mprotect(2) and change_protection().

extension MMStruct {
    /// mprotect(2): do_mprotect_pkey(), under mmap_lock for write.
    func sysMprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        guard let end = try userRange(address, length) else { return }
        mmapLock.writeLock()
        defer { mmapLock.writeUnlock() }
        // do_mprotect_pkey(): the VMAs are changed in order; a hole ends the
        // walk with ENOMEM, after the VMAs before it were changed.
        var cursor = address
        var error: Errno?
        for vma in vmas(in: address, end) {
            if vma.start > cursor {
                error = .ENOMEM
                break
            }
            cursor = vma.end
        }
        if error == nil && cursor < end { error = .ENOMEM }
        let changeEnd = min(cursor, end)
        let removingWrite = !protection.contains(.write)
        for vma in vmas(in: address, changeEnd) {
            // calc_vm_prot_bits(): each PROT_ bit its own VM_ bit (PROT_WRITE does not add VM_READ).
            var newFlags = vma.flags
            newFlags.remove([.read, .write, .exec])
            if protection.contains(.read) { newFlags.insert(.read) }
            if protection.contains(.write) { newFlags.insert(.write) }
            if protection.contains(.exec) { newFlags.insert(.exec) }
            // mprotect_fixup(): nothing to do (no split, no notifier) when the flags stay.
            if newFlags == vma.flags { continue }
            let s = max(vma.start, address), e = min(vma.end, changeEnd)
            // A split the VMA refuses (hugetlb off a huge page boundary) ends the walk with its
            // error; the VMAs before it stay changed.
            for piece in try isolate(s, e) { piece.flags = newFlags }
            // change_protection(): MMU_NOTIFY_PROTECTION_VMA over the range.
            withInvalidation(.protectionVMA, s, e) {
                guard removingWrite else { return }
                ptl.withLock { wrprotectRangeLocked(s, e) }
            }
            mergeVMAs(around: s, e)
        }
        if let error { throw error }
    }

    /// change_protection() removing write. Caller holds `ptl`.
    func wrprotectRangeLocked(_ start: UInt64, _ end: UInt64) {
        let pmdSize = UInt64(self.pmdSize)
        var addr = start
        while addr < end {
            let pmdStart = addr & ~(pmdSize - 1)
            let stop = min(end, pmdStart + pmdSize)
            if let entry = pageTable.pmd(addr) {
                if case .table(let t) = entry {
                    var a = addr
                    while a < stop {
                        let i = pageTable.pteIndex(a)
                        t.entries[i] = t.entries[i].wrprotected()
                        a += UInt64(pageSize)
                    }
                } else if entry.isWritable {
                    pageTable.setPMD(pmdStart, entry.wrprotected())
                }
            }
            addr = stop
        }
    }
}
