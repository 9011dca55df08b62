import ABI

// lib/test_hmm.c's dmirror->pt: an xarray of (tagged) struct page pointers
// indexed by virtual page number. Kept in leaves of 512 entries, one per
// page-table page of the range, as the xarray keeps 64-entry nodes: a range
// operation touches a leaf per 2 MiB, not a hash per page.

/// The device page table of one dmirror file. A reference type on purpose:
/// there is one table per file, never a copy.
///
/// `@unchecked Sendable`: changed under `Dmirror.mutex`, or (xa_erase() takes
/// the xarray's own lock) by the running task with no scheduling point in between.
final class DmirrorPageTable: @unchecked Sendable {
    private static let leafShift: UInt64 = 9
    private static let leafEntries = 1 << leafShift

    private final class Leaf {
        var entries = [DmirrorPTEntry?](repeating: nil, count: DmirrorPageTable.leafEntries)
        var count = 0
    }

    private var leaves: [UInt64: Leaf] = [:]
    /// The leaf last looked up: a walk over a range asks for the same leaf 512 times in a row.
    private var recentKey = UInt64.max
    private var recent: Leaf?
    /// Entries present (xa's count of stored entries).
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    private func leaf(_ key: UInt64) -> Leaf? {
        if key == recentKey { return recent }
        let found = leaves[key]
        recentKey = key
        recent = found
        return found
    }

    private func setLeaf(_ key: UInt64, _ leaf: Leaf?) {
        leaves[key] = leaf
        recentKey = key
        recent = leaf
    }

    /// xa_load() / xa_store() (nil: xa_erase()).
    subscript(pfn: UInt64) -> DmirrorPTEntry? {
        get { leaf(pfn >> Self.leafShift)?.entries[Int(pfn & UInt64(Self.leafEntries - 1))] }
        set {
            let key = pfn >> Self.leafShift
            let slot = Int(pfn & UInt64(Self.leafEntries - 1))
            if let newValue {
                let leaf = leaf(key) ?? {
                    let fresh = Leaf()
                    setLeaf(key, fresh)
                    return fresh
                }()
                if leaf.entries[slot] == nil {
                    leaf.count += 1
                    count += 1
                }
                leaf.entries[slot] = newValue
            } else if let leaf = leaf(key), leaf.entries[slot] != nil {
                leaf.entries[slot] = nil
                leaf.count -= 1
                count -= 1
                if leaf.count == 0 { setLeaf(key, nil) }
            }
        }
    }

    /// Every index in [first, last] holds an entry (true for an empty range).
    func holdsAll(_ first: UInt64, through last: UInt64) -> Bool {
        guard first <= last else { return true }
        var key = first >> Self.leafShift
        while key <= last >> Self.leafShift {
            guard let leaf = leaf(key) else { return false }
            let base = key << Self.leafShift
            let from = key == first >> Self.leafShift ? Int(first - base) : 0
            let to = key == last >> Self.leafShift ? Int(last - base) : Self.leafEntries - 1
            // A full leaf needs no look at its slots.
            if leaf.count < Self.leafEntries {
                for slot in from...to where leaf.entries[slot] == nil { return false }
            }
            key += 1
        }
        return true
    }

    /// The entries of [first, end) in order, while `body` returns true: a leaf lookup
    /// per 512 entries, and each entry lent to `body`, not copied out.
    func scan(_ first: UInt64, _ end: UInt64, _ body: (DmirrorPTEntry?) -> Bool) {
        var pfn = first
        while pfn < end {
            let key = pfn >> Self.leafShift
            let stop = min(end, (key + 1) << Self.leafShift)
            guard let leaf = leaf(key) else {
                while pfn < stop {
                    if !body(nil) { return }
                    pfn += 1
                }
                continue
            }
            let base = key << Self.leafShift
            let more = leaf.entries.withUnsafeBufferPointer { entries in
                while pfn < stop {
                    if !body(entries[Int(pfn - base)]) { return false }
                    pfn += 1
                }
                return true
            }
            if !more { return }
        }
    }

    /// Erases every entry in [first, last] (inclusive, as dmirror_do_update() walks it).
    func erase(_ first: UInt64, through last: UInt64) {
        guard first <= last, count > 0 else { return }
        let firstLeaf = first >> Self.leafShift
        let lastLeaf = last >> Self.leafShift
        func eraseIn(_ key: UInt64) {
            guard let leaf = leaf(key) else { return }
            let base = key << Self.leafShift
            let from = key == firstLeaf ? Int(first - base) : 0
            let to = key == lastLeaf ? Int(last - base) : Self.leafEntries - 1
            for slot in from...to where leaf.entries[slot] != nil {
                leaf.entries[slot] = nil
                leaf.count -= 1
                count -= 1
            }
            if leaf.count == 0 { setLeaf(key, nil) }
        }
        // One leaf (a page, or a PMD's worth, from a migration): no list of keys to build.
        if firstLeaf == lastLeaf { return eraseIn(firstLeaf) }
        // A huge range (a whole-mm invalidation) visits the leaves there are, not every key.
        let keys = lastLeaf &- firstLeaf >= UInt64(leaves.count)
            ? leaves.keys.filter { $0 >= firstLeaf && $0 <= lastLeaf }
            : Array(firstLeaf...lastLeaf).filter { leaves[$0] != nil }
        for key in keys { eraseIn(key) }
    }

    /// The present virtual page numbers in [first, last], ascending.
    func present(_ first: UInt64, through last: UInt64) -> [UInt64] {
        entries(first, through: last).map(\.pfn)
    }

    /// The entries in [first, last], ascending (everything by default).
    func entries(_ first: UInt64 = 0, through last: UInt64 = .max) -> [(pfn: UInt64, entry: DmirrorPTEntry)] {
        guard count > 0, first <= last else { return [] }
        let firstLeaf = first >> Self.leafShift
        let lastLeaf = last >> Self.leafShift
        var found: [(pfn: UInt64, entry: DmirrorPTEntry)] = []
        for key in leaves.keys.filter({ $0 >= firstLeaf && $0 <= lastLeaf }).sorted() {
            let leaf = leaves[key]!
            let base = key << Self.leafShift
            for (slot, entry) in leaf.entries.enumerated() {
                guard let entry else { continue }
                let pfn = base + UInt64(slot)
                if pfn >= first && pfn <= last { found.append((pfn, entry)) }
            }
        }
        return found
    }

    func removeAll() {
        leaves.removeAll()
        recentKey = .max
        recent = nil
        count = 0
    }
}
