import Synchronization

/// The bytes behind one or more physical pages (what `page_address()` points at),
/// none for a device-private folio.
///
/// The only type that owns raw page memory. Noncopyable, held inline by its folio:
/// one heap object per page instead of two. `@unchecked Sendable`: the
/// allocation is fixed for the owner's lifetime; concurrent access to the
/// bytes follows the kernel's rules (the page table lock or the dmirror mutex).
struct PageStorage: ~Copyable, @unchecked Sendable {
    let base: UnsafeMutableRawPointer?
    let byteCount: Int

    init(byteCount: Int, zeroed: Bool) {
        base = PageFrameAllocator.shared.allocate(byteCount: byteCount, zeroed: zeroed)
        self.byteCount = byteCount
    }

    init() {
        base = nil
        byteCount = 0
    }

    deinit {
        if let base { PageFrameAllocator.shared.release(base, byteCount: byteCount) }
    }
}

/// struct folio: a naturally aligned power-of-two group of pages.
///
/// The simulator never splits a folio's storage: a large folio that gets
/// PTE-mapped is addressed page by page through `PageRef(folio, index)`,
/// exactly what the kernel's split would leave behind as far as data,
/// mappings and device page tables are concerned.
///
/// `@unchecked Sendable`: `mapcount` and `extraRefs` are atomic; the other mutable fields are
/// written only while the page is being allocated, migrated or freed, under
/// the owning mm's page table lock or the device lock.
final class Folio: @unchecked Sendable {
    enum Kind: Sendable {
        /// An anonymous (private) page.
        case anon
        /// A page of a tmpfs/shmem inode's page cache (also MAP_SHARED|MAP_ANONYMOUS).
        case pageCache
        /// The shared zero page (ZERO_PAGE(0)).
        case zero
        /// The huge zero folio (mm_get_huge_zero_folio()).
        case hugeZero
        /// A kernel page inserted with vm_insert_page() (dmirror_fops_mmap).
        case kernel
        /// A hugetlbfs page from the pool.
        case hugetlb
        /// MEMORY_DEVICE_PRIVATE: not CPU addressable; data lives in the backing page.
        case devicePrivate
        /// MEMORY_DEVICE_COHERENT: CPU addressable device memory.
        case deviceCoherent
    }

    let kind: Kind
    /// folio_order().
    let order: Int
    /// Pages in the folio.
    var nrPages: Int { 1 << order }
    /// The first PFN (device pages only; system pages have no visible PFN here).
    let pfn: UInt64
    /// The data (no bytes for device-private folios).
    let storage: PageStorage
    /// folio_mapcount(): page table entries (PTE or PMD) that map this folio, in any mm.
    let mapcount = Atomic<Int>(0)
    /// References beyond the mappings (get_user_pages()/pin_user_pages() holders):
    /// while any is held, migration leaves the folio where it is (migrate_vma_check_page()).
    let extraRefs = Atomic<Int>(0)
    /// page_pgmap(): the dev_pagemap a ZONE_DEVICE folio belongs to.
    let pgmap: DevPagemap?
    /// page->zone_device_data of a device-private page: the backing system folio (rpage).
    var zoneDeviceData: Folio?
    /// rpage->zone_device_data (or a coherent page's own): the driver's pointer (test_hmm: the dmirror that migrated it).
    weak var driverData: AnyObject?
    /// folio->mapping for page cache folios.
    weak var mapping: ShmemInode?
    /// The hugetlb pool a hugetlb folio returns to.
    weak var hugetlbPool: HugetlbPool?
    /// folio_test_anon() of a hugetlb folio: one that hugetlb_no_page() gave a private
    /// mapping (hugetlb_add_new_anon_rmap()), not a page of a hugetlbfs page cache.
    var hugetlbAnon = false
    /// split_folio() has run on this folio (before 6.18, migrate_vma_collect_pmd() splits a
    /// PMD-mapped THP it collects): its pages are order-0 folios now, which the simulator keeps
    /// in one storage. Written under the page table lock.
    var splitToPages = false
    /// PageTransCompound(): a page of a large folio that has not been split.
    var isTransCompound: Bool { order > 0 && !splitToPages }

    init(kind: Kind, order: Int, pageSize: Int, pfn: UInt64 = 0, pgmap: DevPagemap? = nil, zeroed: Bool = true) {
        self.kind = kind
        self.order = order
        self.pfn = pfn
        self.pgmap = pgmap
        if kind == .devicePrivate {
            storage = PageStorage()
        } else {
            storage = PageStorage(byteCount: pageSize << order, zeroed: zeroed)
        }
    }

    deinit {
        if kind == .hugetlb, let hugetlbPool { hugetlbPool.release() }
    }

    var isZoneDevice: Bool { kind == .devicePrivate || kind == .deviceCoherent }
    var isDevicePrivate: Bool { kind == .devicePrivate }
    var isDeviceCoherent: Bool { kind == .deviceCoherent }
    var isZeroPage: Bool { kind == .zero || kind == .hugeZero }
    /// folio_test_anon().
    var isAnon: Bool { kind == .anon || kind == .deviceCoherent || kind == .devicePrivate || hugetlbAnon }

    /// Where page `index`'s bytes are: for a device-private folio, in its backing page (BACKING_PAGE()).
    @inline(__always)
    func address(page index: Int, pageSize: Int) -> UnsafeMutableRawPointer {
        if let base = storage.base { return base + index * pageSize }
        return backingAddress(page: index, pageSize: pageSize)
    }

    /// A device-private page's bytes, in its backing folio: borrowed, not retained (the
    /// device folio holds it, and nothing here lets it go).
    private func backingAddress(page index: Int, pageSize: Int) -> UnsafeMutableRawPointer {
        Unmanaged.passUnretained(zoneDeviceData!)._withUnsafeGuaranteedRef {
            $0.address(page: index, pageSize: pageSize)
        }
    }

    /// folio_get() for a new mapping.
    @inline(__always) func get() { mapcount.wrappingAdd(1, ordering: .relaxed) }

    /// folio_put() of a mapping. A ZONE_DEVICE folio whose last mapping goes
    /// away is freed through its pagemap (dev_pagemap_ops.folio_free).
    @inline(__always) func put() {
        let old = mapcount.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue
        if old == 1, let pgmap { pgmap.ops.folioFree(self) }
    }
}

/// struct page *: one page of a folio.
struct PageRef: @unchecked Sendable {
    let folio: Folio
    let index: Int

    init(_ folio: Folio, _ index: Int) {
        self.folio = folio
        self.index = index
    }

    @inline(__always)
    func address(pageSize: Int) -> UnsafeMutableRawPointer { folio.address(page: index, pageSize: pageSize) }

    /// The "PFN" of a device page.
    var pfn: UInt64 { folio.pfn + UInt64(index) }

    static func === (a: PageRef, b: PageRef) -> Bool { a.folio === b.folio && a.index == b.index }
}
