import ABI

// mm/hugetlb.c: the default hstate's pool and hugetlb_fault().

/// The default hstate's pool (nr_hugepages / free_hugepages).
///
/// `@unchecked Sendable`: counters protected by `lock`.
final class HugetlbPool: @unchecked Sendable {
    private let lock = HostLock()
    private(set) var total: Int
    private var free: Int
    let pageSize: Int
    let hugePageSize: Int

    init(pages: Int, pageSize: Int, hugePageSize: Int) {
        total = pages
        free = pages
        self.pageSize = pageSize
        self.hugePageSize = hugePageSize
    }

    var order: Int { (hugePageSize / pageSize).trailingZeroBitCount }

    var freePages: Int { lock.withLock { free } }

    /// Raise nr_hugepages to at least `count` free pages.
    func reserve(_ count: Int) -> Bool {
        lock.withLock {
            if free < count {
                total += count - free
                free = count
            }
            return true
        }
    }

    /// alloc_hugetlb_folio().
    func allocate() -> Folio? {
        let ok = lock.withLock { () -> Bool in
            guard free > 0 else { return false }
            free -= 1
            return true
        }
        guard ok else { return nil }
        let folio = Folio(kind: .hugetlb, order: order, pageSize: pageSize)
        folio.hugetlbPool = self
        return folio
    }

    /// free_huge_folio().
    func release() {
        lock.withLock { free += 1 }
    }
}

extension MMStruct {
    /// hugetlb_fault() for a missing entry.
    func hugetlbFault(_ vma: VMArea, _ address: UInt64, write: Bool) -> VMFault {
        let hsize = UInt64(kernel.configuration.hugetlbPageSize)
        let haddr = address & ~(hsize - 1)
        guard let folio = kernel.hugetlbPool.allocate() else { return .sigbus }
        ptl.withLock {
            if pageTable.pmd(haddr) == nil {
                pageTable.setPMD(haddr, .hugetlb(folio, writable: vma.flags.contains(.write) && (write || vma.isShared)))
            }
        }
        return .done
    }
}
