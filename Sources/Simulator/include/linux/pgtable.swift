/// pte_t: one page table entry.
enum PTE: @unchecked Sendable {
    /// pte_none().
    case none
    /// A present PTE mapping `page` (system page, zero page, kernel page or device-coherent page).
    case present(PageRef, writable: Bool)
    /// A device-private swap entry (make_*_device_private_entry).
    case devicePrivate(PageRef, writable: Bool)
    /// A device-exclusive entry (make_device_exclusive): the page stays, the CPU must fault to use it.
    case deviceExclusive(PageRef, writable: Bool)
    /// A migration entry: the page is being migrated; faults wait (migration_entry_wait).
    case migration(PageRef, writable: Bool)

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    /// The page an entry refers to, if any.
    var page: PageRef? {
        switch self {
        case .none: nil
        case .present(let p, _), .devicePrivate(let p, _), .deviceExclusive(let p, _), .migration(let p, _): p
        }
    }

    var isWritable: Bool {
        switch self {
        case .none: false
        case .present(_, let w), .devicePrivate(_, let w), .deviceExclusive(_, let w), .migration(_, let w): w
        }
    }

    /// pte_wrprotect() (for any kind of entry that carries a write bit).
    func wrprotected() -> PTE {
        switch self {
        case .none: .none
        case .present(let p, _): .present(p, writable: false)
        case .devicePrivate(let p, _): .devicePrivate(p, writable: false)
        case .deviceExclusive(let p, _): .deviceExclusive(p, writable: false)
        case .migration(let p, _): .migration(p, writable: false)
        }
    }
}

/// A PTE page (one per PMD that is not mapped huge): PTRS_PER_PTE entries.
final class PTETable: @unchecked Sendable {
    var entries: ContiguousArray<PTE>

    init(count: Int) {
        entries = ContiguousArray(repeating: .none, count: count)
    }

    var isEmpty: Bool { entries.allSatisfy { $0.isNone } }
}

/// A walk's memory of the PTE table it used last (pte_offset_map_lock() once per PMD, not
/// once per page): valid while nothing sets a PMD, which is the walker's to make sure of.
struct PTECursor {
    private var index: UInt64 = .max
    private var cached: PTETable?

    /// The PTE table covering `addr`, nil where the PMD holds none.
    mutating func table(_ pageTable: PageTable, _ addr: UInt64) -> PTETable? {
        let i = pageTable.pmdIndex(addr)
        if i != index {
            index = i
            if case .table(let t)? = pageTable.pmds[i] { cached = t } else { cached = nil }
        }
        return cached
    }
}

/// pmd_t: what one PMD-sized range of the address space is mapped by.
enum PMDEntry: @unchecked Sendable {
    /// A PTE table.
    case table(PTETable)
    /// pmd_trans_huge(): a PMD-mapped THP, or the huge zero folio.
    case huge(Folio, writable: Bool)
    /// A PMD-mapped hugetlb page.
    case hugetlb(Folio, writable: Bool)
    /// A device-private PMD entry (zone-device THP).
    case devicePrivate(Folio, writable: Bool)
    /// A PMD migration entry.
    case migration(Folio, writable: Bool)

    var folio: Folio? {
        switch self {
        case .table: nil
        case .huge(let f, _), .hugetlb(let f, _), .devicePrivate(let f, _), .migration(let f, _): f
        }
    }

    var isWritable: Bool {
        switch self {
        case .table: false
        case .huge(_, let w), .hugetlb(_, let w), .devicePrivate(_, let w), .migration(_, let w): w
        }
    }

    func wrprotected() -> PMDEntry {
        switch self {
        case .table(let t): .table(t)
        case .huge(let f, _): .huge(f, writable: false)
        case .hugetlb(let f, _): .hugetlb(f, writable: false)
        case .devicePrivate(let f, _): .devicePrivate(f, writable: false)
        case .migration(let f, _): .migration(f, writable: false)
        }
    }
}

/// The page tables of one mm: a map from PMD index to the PMD entry.
///
/// Protected by `MMStruct.ptl` (the page table lock). All changes of
/// entries go through `setPTE`/`setPMD`, which keep folio map counts.
struct PageTable {
    let pageShift: Int
    let pmdShift: Int
    var pmds: [UInt64: PMDEntry] = [:]

    var ptrsPerPTE: Int { 1 << (pmdShift - pageShift) }

    init(pageShift: Int, pmdShift: Int) {
        self.pageShift = pageShift
        self.pmdShift = pmdShift
    }

    @inline(__always) func pmdIndex(_ addr: UInt64) -> UInt64 { addr >> UInt64(pmdShift) }
    @inline(__always) func pteIndex(_ addr: UInt64) -> Int {
        Int((addr >> UInt64(pageShift)) & UInt64(ptrsPerPTE - 1))
    }

    /// pmd_offset(): the PMD entry covering `addr`, nil for pmd_none().
    func pmd(_ addr: UInt64) -> PMDEntry? { pmds[pmdIndex(addr)] }

    /// pte_offset_map(): the PTE for `addr` if a PTE table exists there.
    func pte(_ addr: UInt64) -> PTE {
        guard case .table(let table)? = pmds[pmdIndex(addr)] else { return .none }
        return table.entries[pteIndex(addr)]
    }

    /// pte_alloc(): the PTE table covering `addr`, created if pmd_none().
    /// Returns nil when the PMD maps something huge.
    mutating func pteTable(_ addr: UInt64) -> PTETable? {
        let index = pmdIndex(addr)
        switch pmds[index] {
        case .table(let t)?: return t
        case nil:
            let t = PTETable(count: ptrsPerPTE)
            pmds[index] = .table(t)
            return t
        default: return nil
        }
    }

    /// set_pte_at(): replaces the PTE for `addr`, keeping map counts.
    mutating func setPTE(_ addr: UInt64, _ new: PTE) {
        guard let table = pteTable(addr) else { preconditionFailure("setPTE on a huge PMD") }
        Self.set(table, pteIndex(addr), new)
    }

    /// set_pte_at() into a PTE table already looked up: entry `i` of `table`, keeping map counts.
    static func set(_ table: PTETable, _ i: Int, _ new: PTE) {
        let old = table.entries[i]
        new.page?.folio.get()
        table.entries[i] = new
        old.page?.folio.put()
    }

    /// Replaces the PMD covering `addr` (nil: pmd_clear), keeping map counts.
    mutating func setPMD(_ addr: UInt64, _ new: PMDEntry?) {
        let index = pmdIndex(addr)
        let old = pmds[index]
        new?.folio?.get()
        pmds[index] = new
        if let old { release(old) }
    }

    /// Drops the map counts an entry held.
    private func release(_ entry: PMDEntry) {
        switch entry {
        case .table(let t):
            for e in t.entries { e.page?.folio.put() }
        default:
            entry.folio?.put()
        }
    }
}
