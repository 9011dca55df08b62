import ABI
import MachineInterface

// mm/gup.c: get_user_pages() and pin_user_pages(), fast and slow.

/// FOLL_* flags, as the simulator's GUP reads them.
struct FollFlags: OptionSet {
    let rawValue: UInt32
    /// FOLL_WRITE: the pages must be writable (a write fault breaks COW).
    static let write = FollFlags(rawValue: 1 << 0)
    /// FOLL_PIN: pin_user_pages() rather than get_user_pages().
    static let pin = FollFlags(rawValue: 1 << 1)
    /// FOLL_LONGTERM: the pin may be held indefinitely; unpinnable pages are migrated first.
    static let longterm = FollFlags(rawValue: 1 << 2)
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

    /// gup_fast(): walk the page tables without mmap_lock and without faulting,
    /// stopping at the first page that is not there as asked. A long-term pin
    /// stops at a page that cannot be pinned long term (device-coherent memory).
    /// The pages taken, each with a reference.
    func gupFast(_ start: UInt64, pages: Int, _ flags: FollFlags) -> [PageRef] {
        var taken: [PageRef] = []
        for i in 0..<pages {
            let addr = start + UInt64(i << pageShift)
            guard let page = followPage(addr, write: flags.contains(.write)) else { break }
            if flags.contains(.longterm) && page.folio.isDeviceCoherent { break }
            page.folio.extraRefs.wrappingAdd(1, ordering: .relaxed)
            taken.append(page)
        }
        return taken
    }

    /// __get_user_pages(): under mmap_read_lock, each page is looked up and, where it is
    /// missing or not writable as asked, faulted in (faultin_page()) and looked up again.
    /// A long-term pin first migrates device-coherent pages to system memory
    /// (check_and_migrate_movable_pages()). The pages, each with a reference.
    func getUserPages(_ start: UInt64, pages: Int, _ flags: FollFlags) throws(Errno) -> [PageRef] {
        mmapLock.readLock()
        defer { mmapLock.readUnlock() }
        var taken: [PageRef] = []
        do throws(Errno) {
            for i in 0..<pages {
                let addr = start + UInt64(i << pageShift)
                let write = flags.contains(.write)
                // check_vma_flags(): VM_WRITE for a write, VM_READ for a read.
                guard let vma = vmaLookup(addr), vma.flags.contains(write ? .write : .read) else { throw .EFAULT }
                var page = followPage(addr, write: write)
                while page == nil {
                    let result = handleMMFault(vma, addr, write ? [.write, .remote] : [.remote])
                    if let e = result.errno { throw e }
                    page = followPage(addr, write: write)
                }
                if flags.contains(.longterm), let coherent = page, coherent.folio.isDeviceCoherent {
                    migrateDeviceCoherentPage(addr, coherent)
                    page = followPage(addr, write: write)
                }
                guard let page else { throw .EFAULT }
                page.folio.extraRefs.wrappingAdd(1, ordering: .relaxed)
                taken.append(page)
            }
        } catch {
            putPages(taken)
            throw error
        }
        return taken
    }

    /// put_page() / unpin_user_pages().
    func putPages(_ pages: [PageRef]) {
        for page in pages { page.folio.extraRefs.wrappingSubtract(1, ordering: .relaxed) }
    }

    /// get_user_pages_fast() / pin_user_pages_fast(): the fast walk, and the slow
    /// path for whatever it could not take.
    func getUserPagesFast(_ start: UInt64, pages: Int, _ flags: FollFlags) throws(Errno) -> [PageRef] {
        let fast = gupFast(start, pages: pages, flags)
        guard fast.count < pages else { return fast }
        do {
            return fast + (try getUserPages(start + UInt64(fast.count << pageShift), pages: pages - fast.count, flags))
        } catch {
            putPages(fast)
            throw error
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
