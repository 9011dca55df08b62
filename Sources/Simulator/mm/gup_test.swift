import ABI
import MachineInterface

/// /sys/kernel/debug/gup_test (mm/gup_test.c): get_user_pages*/pin_user_pages* on a range.
final class SimGupTestFile: GupTestFile, @unchecked Sendable {
    unowned let process: SimProcess

    init(process: SimProcess) { self.process = process }

    func run(_ operation: GupTestOperation, address: UInt64, size: Int, flags: GupFlags, pagesPerCall: Int) throws(Errno) {
        let mm = process.mm
        let pageSize = UInt64(mm.pageSize)
        let start = address & ~(pageSize - 1)
        let end = address + UInt64(size)
        let write = flags.contains(.write)
        let longterm = flags.contains(.longterm) || operation == .pinLongtermBenchmark
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        var addr = start
        while addr < end {
            guard let vma = mm.vmaLookup(addr), vma.flags.contains(.read) else { throw .EFAULT }
            if write && !vma.flags.contains(.write) { throw .EFAULT }
            // __get_user_pages(): follow_page_mask(), faultin_page() until it is there.
            var page: PageRef?
            while page == nil {
                page = mm.followPage(addr, write: write)
                if page == nil {
                    let r = mm.handleMMFault(vma, addr, write ? [.write, .remote] : [.remote])
                    if let e = r.errno { throw e }
                }
            }
            // check_and_migrate_movable_pages(): device-coherent pages cannot be pinned long term.
            if longterm, let page, page.folio.isDeviceCoherent {
                mm.migrateDeviceCoherentPage(addr, page)
            }
            addr += pageSize
        }
    }

    func close() {}
}

extension MMStruct {
    /// follow_page_mask(): the page mapped at `addr` if present with the needed access.
    func followPage(_ addr: UInt64, write: Bool) -> PageRef? {
        ptl.withLock {
            let pmdStart = addr & ~UInt64(pmdSize - 1)
            switch pageTable.pmd(addr) {
            case .huge(let f, let w)?, .hugetlb(let f, let w)?:
                if write && !w { return nil }
                return PageRef(f, Int((addr - pmdStart) >> UInt64(pageShift)))
            case .table?:
                if case .present(let p, let w) = pageTable.pte(addr), !write || w { return p }
                return nil
            default:
                return nil
            }
        }
    }

    /// migrate_device_coherent_folio(): copy a device-coherent page to system memory.
    func migrateDeviceCoherentPage(_ addr: UInt64, _ page: PageRef) {
        let folio = kernel.allocFolio(.anon, order: 0, zeroed: false)
        copyPage(to: PageRef(folio, 0), from: page)
        withInvalidation(.clear, addr, addr + UInt64(pageSize)) {
            ptl.withLock {
                guard case .present(let p, let w) = pageTable.pte(addr), p === page else { return }
                pageTable.setPTE(addr, .present(PageRef(folio, 0), writable: w))
            }
        }
    }
}
