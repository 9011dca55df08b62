// What the generator knows about the scenario it is writing: the mappings
// (and which of their pages a CPU access may fault on, so most accesses do not
// end the scenario early), the device files, the temporary files; and the
// step that picks the next operation.
//
// Known findings the generator steers around, so that a fuzz run is a clean
// regression check until they are fixed (each has its minimal scenario in
// Tests/Scenarios/findings/; remove the avoidance with the fix):
// - kernel-two-files-one-device.scn and kernel-fork-child-file-stale.scn (test_hmm findings,
//   the kernel's as much as the simulator's): one file per device, a fork block's own files
//   included.
// The simulator findings the generator used to avoid (partial munmap, mprotect and DONTNEED of
// hugetlb, private and shared hugetlb across fork, mremap to= that shrinks, the huge zero page
// under a partial migration, the device file's zapped pages, EXCLUSIVE of coherent pages) are
// fixed; their scenarios are kept in Tests/Scenarios/ as regressions.

struct GenMapping {
    enum Kind: Equatable { case anon, shared, file, hugetlb, device }

    var name: String
    var pages: Int
    var kind: Kind
    /// PMD-aligned and a PMD multiple: THP-eligible.
    var thp: Bool
    /// Pages a load (or a store) may fault on: unmapped, PROT_NONE, read-only, moved away, SIGBUS.
    var noLoad: [Bool]
    var noStore: [Bool]

    init(name: String, pages: Int, kind: Kind, thp: Bool, readOnly: Bool = false, sigbus: Bool = false) {
        self.name = name
        self.pages = pages
        self.kind = kind
        self.thp = thp
        noLoad = Array(repeating: sigbus, count: pages)
        noStore = Array(repeating: sigbus || readOnly, count: pages)
    }

    mutating func mark(_ first: Int, _ count: Int, load: Bool, store: Bool) {
        for k in first..<min(first + count, pages) {
            if load { noLoad[k] = true }
            if store { noStore[k] = true }
        }
    }

    /// Whether an munmap or mprotect of these pages splits the VMA where it may: a hugetlb
    /// VMA only on huge page boundaries (hugetlb_vm_op_split()); elsewhere it is EINVAL.
    func splits(_ first: Int, _ count: Int) -> Bool {
        guard kind == .hugetlb else { return true }
        return first % 512 == 0 && (first + count) % 512 == 0
    }

    mutating func clear(_ first: Int, _ count: Int) {
        for k in first..<min(first + count, pages) {
            noLoad[k] = false
            noStore[k] = false
        }
    }
}

struct GenDevice {
    var name: String
    var unit: Int
    var open: Bool
    /// In a fork block: a file of the parent (it acts on the parent's address space).
    var inherited = false
}

/// A next operation the last one makes interesting (migrate after FAIL_ALLOC, ...).
enum FollowUp {
    case migrate(device: String)
    case checkExclusive(device: String, mapping: String)
    case fork
    case mremap
    case deviceAccess
}

struct GenModel {
    var mappings: [GenMapping] = []
    var devices: [GenDevice] = []
    var files: [(name: String, pages: Int)] = []
    var counter = 0
    var hugetlbUsed = false
    var followUps: [FollowUp] = []

    mutating func newName(_ prefix: String) -> String {
        defer { counter += 1 }
        return "\(prefix)\(counter)"
    }

    var openDevices: [GenDevice] { devices.filter(\.open) }

    /// Units with no open file, in this process or (in a fork block) its parent: one file per device
    /// (a known test_hmm finding; a forked child shares the parent's device-private pages).
    var freeUnits: [Int] {
        let busy = Set(devices.filter { $0.open || $0.inherited }.map(\.unit))
        return (0..<4).filter { !busy.contains($0) }
    }

    /// Devices first (one to three, private and coherent units), then mappings with data in them.
    mutating func setup(_ r: inout ScenarioRandom, into out: inout [Statement]) {
        let count = r.weighted([0, 40, 40, 20])
        for _ in 0..<count {
            var unit = r.weighted([30, 20, 30, 20])
            if !freeUnits.contains(unit) { unit = r.element(freeUnits) }
            let name = newName("d")
            devices.append(GenDevice(name: name, unit: unit, open: true))
            out.append(Statement(.open(file: name, unit: unit)))
        }
        for _ in 0..<r.weighted([0, 45, 40, 15]) { mmapOp(&r, into: &out) }
        for m in mappings where r.chance(80) && m.kind != .device {
            if let range = cpuRange(&r, m, store: true, whole: true) {
                out.append(Statement(.store(range, randomPattern(&r))))
            }
        }
    }

    /// One operation (a fork block counts its body); how many statements it took.
    mutating func step(_ r: inout ScenarioRandom, into out: inout [Statement], depth: Int, budget: Int) -> Int {
        if !followUps.isEmpty && r.chance(60) {
            let next = followUps.removeFirst()
            if let used = followUp(next, &r, into: &out, depth: depth, budget: budget) { return used }
        }
        followUps.removeAll()
        if mappings.isEmpty || r.chance(3) {
            mmapOp(&r, into: &out)
            return 1
        }
        let weights = [
            14, // 0 store
            9,  // 1 load
            16, // 2 migrate_to_dev
            6,  // 3 migrate_to_sys
            7,  // 4 read
            5,  // 5 write
            8,  // 6 snapshot
            4,  // 7 exclusive
            2,  // 8 check_exclusive
            2,  // 9 read_unlocked
            3,  // 10 flags fail_alloc
            2,  // 11 release
            2,  // 12 close / reopen
            4,  // 13 munmap
            5,  // 14 mprotect
            6,  // 15 madvise
            4,  // 16 mremap
            depth < 2 && budget > 2 ? 5 : 0, // 17 fork
            1,  // 18 raw ioctl
        ]
        switch r.weighted(weights) {
        case 0: return storeOp(&r, into: &out)
        case 1: return loadOp(&r, into: &out)
        case 2: return deviceOp(.migrateToDevice, &r, into: &out)
        case 3: return deviceOp(.migrateToSystem, &r, into: &out)
        case 4: return deviceOp(.read, &r, into: &out)
        case 5: return writeOp(&r, into: &out)
        case 6: return deviceOp(.snapshot, &r, into: &out)
        case 7: return deviceOp(.exclusive, &r, into: &out)
        case 8: return deviceOp(.checkExclusive, &r, into: &out)
        case 9: return deviceOp(.readUnlocked, &r, into: &out)
        case 10: return flagsOp(&r, into: &out)
        case 11: return releaseOp(&r, into: &out)
        case 12: return closeOp(&r, into: &out)
        case 13: return munmapOp(&r, into: &out)
        case 14: return mprotectOp(&r, into: &out)
        case 15: return madviseOp(&r, into: &out)
        case 16: return mremapOp(&r, into: &out)
        case 17: return forkOp(&r, into: &out, depth: depth, budget: budget)
        default: return rawIoctlOp(&r, into: &out)
        }
    }

    mutating func followUp(_ next: FollowUp, _ r: inout ScenarioRandom, into out: inout [Statement], depth: Int,
                           budget: Int) -> Int? {
        switch next {
        case .migrate(let device):
            guard devices.contains(where: { $0.name == device && $0.open }), let m = pickMapping(&r) else { return nil }
            out.append(Statement(.command(.migrateToDevice, file: device, range: anyRange(&r, m))))
            return 1
        case .checkExclusive(let device, let mapping):
            guard devices.contains(where: { $0.name == device && $0.open }),
                  let m = mappings.first(where: { $0.name == mapping }) else { return nil }
            if r.chance(50) {
                out.append(Statement(.command(.checkExclusive, file: device, range: PageRange(m.name))))
                return 1
            }
            return r.chance(50) ? loadOp(&r, into: &out) : storeOp(&r, into: &out)
        case .fork:
            guard depth < 2 && budget > 2 else { return nil }
            return forkOp(&r, into: &out, depth: depth, budget: budget)
        case .mremap: return mremapOp(&r, into: &out)
        case .deviceAccess: return r.chance(50) ? deviceOp(.read, &r, into: &out) : deviceOp(.migrateToDevice, &r, into: &out)
        }
    }

    /// Sometimes the files are closed explicitly at the end (the runner closes the rest).
    mutating func teardown(_ r: inout ScenarioRandom, into out: inout [Statement]) {
        for k in devices.indices where devices[k].open && r.chance(40) {
            devices[k].open = false
            out.append(Statement(.close(file: devices[k].name)))
        }
    }

    // MARK: Choosing what to act on

    mutating func pickMapping(_ r: inout ScenarioRandom) -> GenMapping? {
        guard !mappings.isEmpty else { return nil }
        // The newest mappings are the likeliest (they are where the action is).
        let k = mappings.count - 1 - min(r.below(mappings.count), r.below(mappings.count))
        return mappings[k]
    }

    mutating func pickDevice(_ r: inout ScenarioRandom) -> GenDevice? {
        let open = openDevices
        return open.isEmpty ? nil : r.element(open)
    }

    /// A range of any pages: whole, one page, a span, or (THP mappings) PMD-aligned and PMD-crossing spans.
    func anyRange(_ r: inout ScenarioRandom, _ m: GenMapping) -> PageRange {
        let pmd = 512
        if m.thp && r.chance(45) {
            let pmds = m.pages / pmd
            let k = r.below(pmds)
            switch r.below(5) {
            case 0: return PageRange(m.name, .span(k * pmd, (k + 1) * pmd))
            case 1 where pmds > 1: return PageRange(m.name, .span(pmd / 2, pmd + pmd / 2))
            case 2: return PageRange(m.name, .span(k * pmd + r.below(pmd - 1) + 1, (k + 1) * pmd))
            case 3: return PageRange(m.name, .page(k * pmd + r.below(pmd)))
            default: return PageRange(m.name)
            }
        }
        switch r.weighted([35, 25, 40]) {
        case 0: return PageRange(m.name)
        case 1: return m.pages == 1 ? PageRange(m.name) : PageRange(m.name, .page(r.below(m.pages)))
        default:
            guard m.pages > 1 else { return PageRange(m.name) }
            let a = r.below(m.pages - 1)
            let b = a + 1 + r.below(min(m.pages - a, 64))
            return PageRange(m.name, .span(a, b))
        }
    }

    /// A range a CPU access will not fault on, mostly (one try in ten accepts any).
    func cpuRange(_ r: inout ScenarioRandom, _ m: GenMapping, store: Bool, whole: Bool = false) -> PageRange? {
        let blocked = store ? m.noStore : m.noLoad
        for attempt in 0..<6 {
            let range = whole && attempt == 0 ? PageRange(m.name) : anyRange(&r, m)
            let (first, count) = range.resolved(mappingPages: m.pages)
            if !blocked[first..<(first + count)].contains(true) { return range }
        }
        return r.chance(10) ? anyRange(&r, m) : nil
    }

    mutating func randomPattern(_ r: inout ScenarioRandom) -> Pattern {
        switch r.weighted([55, 25, 15, 5]) {
        case 0: return .seq(UInt32(r.below(4) * 0x1000))
        case 1: return .rand(UInt64(r.below(1000)))
        case 2: return .fill(UInt8(1 + r.below(255)))
        default: return .zero
        }
    }
}
