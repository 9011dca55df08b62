import ABI

// mm/mmap.c: mmap(2), munmap(2), finding an unmapped area, and exit_mmap().

/// What a new mapping is backed by (mmap's fd, resolved).
enum MapBacking {
    /// MAP_ANONYMOUS (a shmem inode is made for MAP_SHARED, as shmem_zero_setup() does).
    case anonymous
    /// A tmpfs file's page cache.
    case file(ShmemInode)
    /// The dmirror device file (dmirror_fops_mmap).
    case device(Dmirror)
}

extension MMStruct {
    /// The end of [address, address + length rounded up to pages): EINVAL for an
    /// unaligned start, nil for an empty range (a no-op that succeeds).
    func userRange(_ address: UInt64, _ length: Int) throws(Errno) -> UInt64? {
        let pageMask = UInt64(pageSize - 1)
        guard address & pageMask == 0 else { throw .EINVAL }
        guard length > 0 else { return nil }
        return address + ((UInt64(length) + pageMask) & ~pageMask)
    }

    /// calc_vm_prot_bits() | calc_vm_flag_bits(): the VMA flags of a new mapping.
    static func vmFlags(_ protection: Protection, shared: Bool, hugetlb: Bool) -> VMFlags {
        var flags: VMFlags = [.mayWrite]
        // PROT_WRITE gives VM_WRITE alone, never VM_READ (x86 has no arch bits here but the
        // protection keys): a write-only VMA is still loadable by the CPU (vma_is_accessible()),
        // but hmm_range_fault() and the migrations, which test VM_READ, refuse it.
        if protection.contains(.read) { flags.insert(.read) }
        if protection.contains(.write) { flags.insert(.write) }
        if protection.contains(.exec) { flags.insert(.exec) }
        if shared { flags.insert(.shared) }
        // hugetlbfs_file_mmap(): VM_HUGETLB | VM_DONTEXPAND.
        if hugetlb { flags.formUnion([.hugetlb, .dontexpand]) }
        return flags
    }

    /// mmap(2): vm_mmap_pgoff() → do_mmap() → mmap_region(), under mmap_lock for write.
    func sysMmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags,
                 backing: MapBacking, offset: Int) throws(Errno) -> UInt64 {
        let pageMask = UInt64(pageSize - 1)
        guard length > 0, offset >= 0, UInt64(offset) & pageMask == 0 else { throw .EINVAL }
        let shared = flags.contains(.shared)
        guard shared != flags.contains(.private) else { throw .EINVAL }
        let hugetlb = flags.contains(.hugetlb)
        let align = UInt64(hugetlb ? kernel.configuration.hugetlbPageSize : pageSize)
        let len = (UInt64(length) + align - 1) & ~(align - 1)

        var vmFlags = Self.vmFlags(protection, shared: shared, hugetlb: hugetlb)
        var file: ShmemInode?
        var device: Dmirror?
        switch backing {
        case .anonymous:
            guard flags.contains(.anonymous) || hugetlb else { throw .EBADF }
            if shared && !hugetlb { file = ShmemInode(size: Int(len), pageSize: pageSize) }
        case .file(let inode):
            file = inode
        case .device(let dmirror):
            device = dmirror
            vmFlags.insert(.mixedmap)
        }

        mmapLock.writeLock()
        defer { mmapLock.writeUnlock() }
        let start: UInt64
        if flags.contains(.fixed) || flags.contains(.fixedNoReplace) {
            guard let address, address & (align - 1) == 0 else { throw .EINVAL }
            if flags.contains(.fixedNoReplace) && !vmas(in: address, address + len).isEmpty { throw .EEXIST }
            try doMunmap(address, address + len)
            start = address
        } else if let address, address != 0, address & (align - 1) == 0,
                  vmas(in: address, address + len).isEmpty, address >= mmapMin {
            start = address
        } else {
            // thp_get_unmapped_area(): PMD-multiple anonymous mappings are PMD aligned.
            var a = align
            if case .anonymous = backing, !shared, !hugetlb, len % UInt64(pmdSize) == 0 { a = UInt64(pmdSize) }
            guard let found = getUnmappedArea(length: len, align: a) else { throw .ENOMEM }
            start = found
        }
        // vm_pgoff: the file offset; for private anonymous memory the address (vma_set_anonymous() callers).
        let anonymousPrivate = file == nil && device == nil && !shared && !hugetlb
        let pgoff = anonymousPrivate ? start >> UInt64(pageShift) : UInt64(offset) >> UInt64(pageShift)
        let vma = VMArea(start: start, end: start + len, flags: vmFlags, file: file,
                         pgoff: pgoff, isDeviceMapping: device != nil)
        if hugetlb {
            // hugetlb_file_setup(): an unlinked hugetlbfs file of the mapping's size (with
            // VM_NORESERVE: the mapping reserves), then hugetlbfs_file_mmap() reserves its pages.
            vma.hugetlbFile = HugetlbInode(hugePages: len / align, pool: kernel.hugetlbPool)
            guard hugetlbReservePages(vma) else { throw .ENOMEM }
        }
        insertVMA(vma)
        device?.fopsMmap(self, vma)
        if flags.contains(.populate) {
            var a = start
            while a < start + len {
                _ = handleMMFault(vma, a, vmFlags.contains(.write) && !shared ? [.write] : [])
                a += UInt64(pageSize)
            }
        }
        // vma_merge_new_range()
        if device == nil { mergeVMAs(around: start, start + len) }
        return start
    }

    /// munmap(2), under mmap_lock for write: do_vmi_munmap() of the page-aligned length. A
    /// hugetlb VMA refuses to be split off its huge page boundaries (hugetlb_vm_op_split()),
    /// so a range that starts or ends inside a huge page is EINVAL and unmaps nothing.
    func sysMunmap(_ address: UInt64, length: Int) throws(Errno) {
        let pageMask = UInt64(pageSize - 1)
        guard address & pageMask == 0, length > 0 else { throw .EINVAL }
        let len = (UInt64(length) + pageMask) & ~pageMask
        mmapLock.writeLock()
        defer { mmapLock.writeUnlock() }
        try doMunmap(address, address + len)
    }

    /// do_vmi_munmap() -> do_vmi_align_munmap(): removes [start, end). The VMAs at both ends
    /// are split first (vms_gather_munmap_vmas()); a split that fails leaves the range mapped.
    func doMunmap(_ start: UInt64, _ end: UInt64) throws(Errno) {
        let victims = try isolate(start, end)
        guard !victims.isEmpty else { return }
        withInvalidation(.unmap, start, end) {
            ptl.withLock { zapPageRangeLocked(start, end) }
        }
        removeVMAs(victims)
    }

    /// get_unmapped_area(): top-down search for a gap of `length` aligned to `align`.
    func getUnmappedArea(length: UInt64, align: UInt64) -> UInt64? {
        var ceiling = mmapBase
        for vma in vmas.reversed() where vma.start < ceiling {
            if ceiling >= vma.end, let fit = fit(below: ceiling, above: vma.end, length: length, align: align) {
                return fit
            }
            ceiling = min(ceiling, vma.start)
        }
        return fit(below: ceiling, above: mmapMin, length: length, align: align)
    }

    private func fit(below ceiling: UInt64, above floor: UInt64, length: UInt64, align: UInt64) -> UInt64? {
        guard ceiling >= length else { return nil }
        let candidate = (ceiling - length) & ~(align - 1)
        return candidate >= floor ? candidate : nil
    }

    /// exit_mmap(): the last user is gone; every mapping is torn down. As in the kernel,
    /// mmu_notifier_release() comes first and takes no mmap_lock (a notifier's blocking
    /// invalidate may run beside the OOM reaper), the unmap runs under mmap_lock for read,
    /// then MMF_OOM_SKIP is set and the page tables and VMAs go under it for write.
    func exitMmap() {
        withInvalidation(.release, 0, UInt64.max) {}
        mmapLock.readLock()
        ptl.withLock {
            for vma in vmas { zapPageRangeLocked(vma.start, vma.end) }
        }
        mmapLock.readUnlock()
        oomSkip = true
        mmapLock.writeLock()
        ptl.withLock { pageTable.pmds.removeAll() }
        removeVMAs(vmas)
        mmapLock.writeUnlock()
    }
}
