// The shadow model: what every mapped page of a process must hold, by the
// kernel's rules, whatever the simulator does underneath. Migrations, device
// exclusive entries and RELEASE move data without changing it; stores and
// device writes change it; DONTNEED and mremap follow the kernel's rules per
// kind of mapping; fork copies private pages and shares shared ones. Where the
// kernel leaves a choice (MADV_FREE without memory pressure, a device write
// that failed half way), a page may hold one of several contents until a check
// sees which.

/// The bytes of one page.
enum PageData: Hashable {
    case zero
    /// Page `page` of the pattern.
    case pattern(Pattern, Int)
    /// Bytes seen by a check where the model could not know them.
    case bytes([UInt8])
}

/// What a page may hold: one of `alternatives` (empty: not known until a check looks).
struct PageContent: Hashable {
    var alternatives: [PageData]

    static let zero = PageContent([.zero])
    static let unknown = PageContent([])

    init(_ alternatives: [PageData]) { self.alternatives = alternatives }

    var isKnown: Bool { !alternatives.isEmpty }

    /// Either this or `other` (a write that may or may not have happened).
    func or(_ other: PageContent) -> PageContent {
        guard isKnown && other.isKnown else { return .unknown }
        var merged = alternatives
        for a in other.alternatives where !merged.contains(a) { merged.append(a) }
        return PageContent(merged)
    }
}

/// Pages shared between mappings and processes: a shmem segment (MAP_SHARED
/// anonymous), a tmpfs file, a shared hugetlb mapping, a device file mapping.
final class ShadowObject {
    var pages: [PageContent]
    init(pages: [PageContent]) { self.pages = pages }
}

/// How a page's mapping refills it after its entry is zapped (MADV_DONTNEED, mremap's DONTUNMAP).
enum ShadowKind {
    /// Private anonymous memory (and hugetlb private): zero-filled again.
    case anon
    /// A page of a shared object: the data stays in the object.
    case shared(ShadowObject, Int)
    /// A private mapping of a file page: the file's page until written (COW), the file's again after a zap.
    case filePrivate(ShadowObject, Int)
}

/// Where a page's bytes are.
enum PageState {
    /// The page's own bytes (private).
    case own(PageContent)
    /// Through its kind's object (shared pages, unwritten private file pages).
    case viaObject
    /// A load is SIGBUS (past the end of the file, a zapped device-file page).
    case sigbus
}

struct ShadowPage {
    var kind: ShadowKind
    var hugetlb = false
    /// A device file mapping (dmirror_fops_mmap inserts its pages at mmap and has no fault
    /// handler): a zapped page is gone, and touching it again is SIGBUS.
    var zapFaults = false
    /// Whether a CPU load is allowed (nil: not known, after an mprotect that failed half way).
    var readable: Bool?
    var state: PageState
}

/// What a check expects at a page.
enum PageExpectation {
    /// A load faults.
    case fault
    /// A load returns one of these (unknown content: anything).
    case data(PageContent)
    /// A load may fault (readability not known); if it does not, it returns one of these.
    case maybe(PageContent)
}

/// One process's pages, by virtual page number.
final class ShadowSpace {
    var pages: [UInt64: ShadowPage] = [:]

    /// The child's copy at fork: private pages copied (COW keeps them apart), objects shared.
    func copy() -> ShadowSpace {
        let child = ShadowSpace()
        child.pages = pages
        return child
    }

    func expectation(_ vpn: UInt64) -> PageExpectation? {
        guard let page = pages[vpn] else { return nil }
        let content: PageContent
        switch page.state {
        case .sigbus: return .fault
        case .own(let c): content = c
        case .viaObject:
            guard let c = objectContent(page.kind) else { return .fault }
            content = c
        }
        switch page.readable {
        case true?: return .data(content)
        case false?: return .fault
        case nil: return .maybe(content)
        }
    }

    /// The object page behind a shared or unwritten private file page (nil: past its end, SIGBUS).
    func objectContent(_ kind: ShadowKind) -> PageContent? {
        switch kind {
        case .shared(let o, let i), .filePrivate(let o, let i): i < o.pages.count ? o.pages[i] : nil
        case .anon: nil
        }
    }

    /// What the page holds now, readable or not (nil for no page or SIGBUS).
    func content(_ vpn: UInt64) -> PageContent? {
        guard let page = pages[vpn] else { return nil }
        switch page.state {
        case .sigbus: return nil
        case .own(let c): return c
        case .viaObject: return objectContent(page.kind)
        }
    }

    /// A write of `data` that happened (certain) or may have happened (not certain).
    func write(_ vpn: UInt64, _ data: PageData, certain: Bool) {
        guard var page = pages[vpn] else { return }
        let new = PageContent([data])
        switch (page.kind, page.state) {
        case (_, .sigbus):
            return
        case (.shared(let o, let i), _):
            guard i < o.pages.count else { return }
            o.pages[i] = certain ? new : o.pages[i].or(new)
            return
        case (_, .own(let old)):
            page.state = .own(certain ? new : old.or(new))
        case (_, .viaObject):
            // COW of a private file page: the copy starts as the file's page (past its end: SIGBUS, no write).
            guard let old = objectContent(page.kind) else { return }
            page.state = .own(certain ? new : old.or(new))
        }
        pages[vpn] = page
    }

    /// A write fault that copied a private file page without changing it (EXCLUSIVE, MAP_POPULATE).
    func breakCOW(_ vpn: UInt64) {
        guard var page = pages[vpn], case .filePrivate = page.kind, case .viaObject = page.state,
              let content = objectContent(page.kind) else { return }
        page.state = .own(content)
        pages[vpn] = page
    }

    /// The page's entry is zapped (MADV_DONTNEED, DONTUNMAP): its mapping refills it.
    func zap(_ vpn: UInt64) {
        guard var page = pages[vpn] else { return }
        if page.zapFaults {
            page.state = .sigbus
        } else if case .anon = page.kind {
            page.state = .own(.zero)
        } else {
            page.state = .viaObject
        }
        pages[vpn] = page
    }

    /// MADV_FREE: without memory pressure the data stays; with it, the page reads zero.
    func lazyFree(_ vpn: UInt64) {
        guard var page = pages[vpn], case .anon = page.kind, case .own(let c) = page.state else { return }
        page.state = .own(c.or(.zero))
        pages[vpn] = page
    }

    /// Content no longer known (an operation failed after changing an unknown part).
    func forget(_ vpn: UInt64) {
        guard var page = pages[vpn] else { return }
        switch page.kind {
        case .shared(let o, let i):
            if i < o.pages.count { o.pages[i] = .unknown }
        default:
            page.state = .own(.unknown)
        }
        pages[vpn] = page
    }

    /// A check saw `bytes` at the page: keep the alternative they match (or record them where unknown).
    func observe(_ vpn: UInt64, _ data: PageData) {
        guard var page = pages[vpn] else { return }
        switch (page.kind, page.state) {
        case (.shared(let o, let i), _):
            if i < o.pages.count { o.pages[i] = PageContent([data]) }
        case (.filePrivate(let o, let i), .viaObject):
            if i < o.pages.count { o.pages[i] = PageContent([data]) }
        case (_, .own):
            page.state = .own(PageContent([data]))
            pages[vpn] = page
        default:
            break
        }
    }

    /// Moves pages [from, from + count) to [to, to + count) (mremap).
    func move(from: UInt64, to: UInt64, count: UInt64) {
        var moved: [(UInt64, ShadowPage)] = []
        for k in 0..<count {
            if let page = pages.removeValue(forKey: from + k) { moved.append((to + k, page)) }
        }
        for (vpn, page) in moved { pages[vpn] = page }
    }

    func unmap(_ first: UInt64, _ count: UInt64) {
        for k in 0..<count { pages.removeValue(forKey: first + k) }
    }
}
