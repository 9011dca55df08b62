import ABI

// mm/mremap.c: mremap(2) and move_vma().

extension MMStruct {
    /// mremap(2), under mmap_lock for write.
    func sysMremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                   newAddress: UInt64?) throws(Errno) -> UInt64 {
        let pageMask = UInt64(pageSize - 1)
        func pageAlign(_ length: Int) -> UInt64 { (UInt64(length) + pageMask) & ~pageMask }
        // check_mremap_params()
        guard address & pageMask == 0, newSize > 0 else { throw .EINVAL }
        if flags.contains(.fixed) && !flags.contains(.mayMove) { throw .EINVAL }
        if flags.contains(.dontUnmap) && (!flags.contains(.mayMove) || oldSize != newSize) { throw .EINVAL }
        var oldLen = pageAlign(oldSize), newLen = pageAlign(newSize)
        if flags.contains(.fixed) {
            guard let newAddress, newAddress & pageMask == 0 else { throw .EINVAL }
            if newAddress < address + oldLen && address < newAddress + newLen { throw .EINVAL }
        }
        mmapLock.writeLock()
        defer { mmapLock.writeUnlock() }
        // check_prep_vma(): only a VMA at `address` is needed to shrink or keep
        // the size in place (shrink_vma() unmaps the tail, whatever maps it).
        guard var vma = vmaLookup(address) else { throw .EFAULT }
        if vma.isHugetlb {
            // align_hugetlb(): both lengths in whole huge pages, both addresses huge page
            // aligned, and no growth (the reservation cannot be split).
            let h = hugetlbPageSize
            oldLen = (oldLen + h - 1) & ~(h - 1)
            newLen = (newLen + h - 1) & ~(h - 1)
            if address & (h - 1) != 0 || (newAddress ?? 0) & (h - 1) != 0 || newLen > oldLen { throw .EINVAL }
        }
        let mapsNew = flags.contains(.fixed) || flags.contains(.dontUnmap) || newLen > oldLen
        if !mapsNew {
            if newLen < oldLen { try doMunmap(address + newLen, address + oldLen) }
            return address
        }
        // A zero old_len would duplicate the mapping: refused for private mappings.
        if oldLen == 0 && !vma.isShared { throw .EINVAL }
        if flags.contains(.dontUnmap) && !vma.flags.isDisjoint(with: [.dontexpand, .pfnmap]) { throw .EINVAL }
        // A shrink may cross VMA boundaries in the part it unmaps.
        guard address + min(oldLen, newLen) <= vma.end else { throw .EFAULT }
        // A VM_DONTEXPAND mapping (hugetlb) may be moved, but not resized on the way.
        if newLen != oldLen && !vma.flags.isDisjoint(with: [.dontexpand, .pfnmap]) { throw .EFAULT }
        if !flags.contains(.fixed) && !flags.contains(.dontUnmap) {
            if vma.end == address + oldLen && vmas(in: address + oldLen, address + newLen).isEmpty {
                // vma_expand(), then a merge with the next VMA if it is alike.
                vma.end = address + newLen
                mergeVMAs(around: address, address + newLen)
                return address
            }
            guard flags.contains(.mayMove) else { throw .ENOMEM }
        }
        let target: UInt64
        if flags.contains(.fixed), let newAddress {
            // mremap_to(): the destination is unmapped first, then a shrink's tail (with the
            // notifiers' invalidations, as any munmap), and only the rest moves.
            try doMunmap(newAddress, newAddress + newLen)
            if newLen < oldLen {
                try doMunmap(address + newLen, address + oldLen)
                oldLen = newLen
            }
            guard let again = vmaLookup(address) else { throw .EFAULT }
            vma = again
            target = newAddress
        } else {
            guard let found = getUnmappedArea(length: newLen, align: UInt64(pageSize)) else { throw .ENOMEM }
            target = found
        }
        try moveVMA(address, oldLen, to: target, newLen, dontUnmap: flags.contains(.dontUnmap))
        // copy_vma() merges the moved VMA with its new neighbours when alike.
        if !vma.isDeviceMapping { mergeVMAs(around: target, target + newLen) }
        return target
    }

    /// move_vma(): the VMA range moves to `target` with its page table
    /// entries (move_page_tables(): whole PMDs when both sides are PMD
    /// aligned, PTEs otherwise; device-private entries move like any other).
    func moveVMA(_ old: UInt64, _ oldLen: UInt64, to target: UInt64, _ newLen: UInt64, dontUnmap: Bool) throws(Errno) {
        let moved = try isolate(old, old + oldLen)
        guard let first = moved.first else { return }
        let len = min(oldLen, newLen)
        let newVMA = first.copy()
        newVMA.start = target
        newVMA.end = target + newLen
        splitHugePMDAddress(target)
        splitHugePMDAddress(target + len)
        insertVMA(newVMA)
        let pmdSize = UInt64(self.pmdSize)
        let pageSize = UInt64(self.pageSize)
        withInvalidation(.unmap, old, old + len) {
            ptl.withLock {
                var offset: UInt64 = 0
                while offset < len {
                    let src = old + offset, dst = target + offset
                    if src & (pmdSize - 1) == 0 && dst & (pmdSize - 1) == 0 && len - offset >= pmdSize {
                        // move_huge_pmd() / move_normal_pmd()
                        let entry = pageTable.pmds.removeValue(forKey: pageTable.pmdIndex(src))
                        if let stale = pageTable.pmds.removeValue(forKey: pageTable.pmdIndex(dst)) {
                            pageTable.pmds[pageTable.pmdIndex(dst)] = stale
                            pageTable.setPMD(dst, nil)
                        }
                        if let entry { pageTable.pmds[pageTable.pmdIndex(dst)] = entry }
                        offset += pmdSize
                        continue
                    }
                    // move_ptes()
                    switch pageTable.pmd(src) {
                    case .table?, nil: break
                    default: splitHugePMDLocked(src & ~(pmdSize - 1))
                    }
                    if case .table(let t)? = pageTable.pmd(src) {
                        let i = pageTable.pteIndex(src)
                        let pte = t.entries[i]
                        if !pte.isNone {
                            t.entries[i] = .none
                            if let dt = pageTable.pteTable(dst) {
                                let j = pageTable.pteIndex(dst)
                                let stale = dt.entries[j]
                                dt.entries[j] = pte
                                stale.page?.folio.put()
                            } else {
                                pte.page?.folio.put()
                            }
                        }
                    }
                    offset += pageSize
                }
            }
        }
        // fixup_hugetlb_reservations(): the reservations went with the copy.
        for vma in moved where vma.isHugetlb { hugetlbClearReservations(vma) }
        if dontUnmap {
            // MREMAP_DONTUNMAP: the old range stays mapped, now empty.
            return
        }
        removeVMAs(moved)
    }
}
