import ABI

// mm/rmap.c: make_device_exclusive().

extension MMStruct {
    /// make_device_exclusive(): fault the page in writable (GUP with
    /// FOLL_WRITE|FOLL_SPLIT_PMD), then replace its PTE by a device-exclusive entry.
    func makeDeviceExclusive(_ addr: UInt64, owner: AnyObject?) -> Result<PageRef, Errno> {
        while true {
            // get_user_page_vma_remote(FOLL_WRITE | FOLL_SPLIT_PMD) -> check_vma_flags(): no VMA or
            // VM_IO/VM_PFNMAP is EFAULT, hugetlb cannot be split (EOPNOTSUPP), and a write needs
            // VM_WRITE only (a PROT_WRITE-only mapping can be made exclusive).
            guard let vma = vmaLookup(addr), vma.flags.isDisjoint(with: [.io, .pfnmap]) else { return .failure(.EFAULT) }
            if vma.isHugetlb { return .failure(.EOPNOTSUPP) }
            guard vma.flags.contains(.write) else { return .failure(.EFAULT) }
            let haddr = addr & ~UInt64(pmdSize - 1)
            if case .huge? = ptl.withLock({ pageTable.pmd(addr) }) {
                splitHugePMDAddressForce(haddr)
            }
            let current = ptl.withLock { pageTable.pte(addr) }
            guard case .present(let page, true) = current else {
                let r = handleMMFault(vma, addr, [.write, .remote])
                if let e = r.errno { return .failure(e) }
                if case .huge? = ptl.withLock({ pageTable.pmd(addr) }) { splitHugePMDAddressForce(haddr) }
                continue
            }
            guard page.folio.isAnon, page.folio.kind != .hugetlb else { return .failure(.EOPNOTSUPP) }
            let done = withInvalidation(.exclusive, addr, addr + UInt64(pageSize), owner: owner) {
                ptl.withLock { () -> Bool in
                    guard case .present(let p, let w) = pageTable.pte(addr), p === page else { return false }
                    pageTable.setPTE(addr, .deviceExclusive(page, writable: w))
                    return true
                }
            }
            if done { return .success(page) }
        }
    }
}
