// include/linux/highmem.h: memcpy_from_page() and memcpy_to_page(), the kernel's
// copies through a page's kernel mapping (kmap_local_page(), on x86-64 the direct
// map). A device-private page has a struct page but no RAM behind its PFN, so its
// direct-map address faults: only a driver's own BACKING_PAGE() holds its bytes.

extension SimKernel {
    /// memcpy_from_page(to, page, 0, count), called from the kernel function `caller`.
    func memcpyFromPage(_ to: UnsafeMutableRawPointer, _ page: PageRef, _ count: Int, caller: StaticString) {
        if page.folio.isDevicePrivate { pageFaultOops(page, access: "read", caller: caller) }
        to.copyMemory(from: page.address(pageSize: configuration.pageSize), byteCount: count)
    }

    /// memcpy_to_page(page, 0, from, count), called from the kernel function `caller`.
    func memcpyToPage(_ page: PageRef, _ from: UnsafeRawPointer, _ count: Int, caller: StaticString) {
        if page.folio.isDevicePrivate { pageFaultOops(page, access: "write", caller: caller) }
        page.address(pageSize: configuration.pageSize).copyMemory(from: from, byteCount: count)
    }
}
