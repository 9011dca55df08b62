import ABI

// The generator's operations, one builder each; every builder updates the
// model with what the operation may have done to the pages.

extension GenModel {
    mutating func mmapOp(_ r: inout ScenarioRandom, into out: inout [Statement]) {
        let name = newName("m")
        var kind = GenMapping.Kind.anon
        var pages: Int
        var spec: MmapSpec
        switch r.weighted([50, 22, 9, 9, hugetlbUsed ? 0 : 4, openDevices.isEmpty ? 0 : 3]) {
        case 1:
            // THP-aligned anonymous memory, mostly with MADV_HUGEPAGE: PMD mappings.
            pages = 512 * (1 + r.below(2))
            spec = MmapSpec(name: name, pages: pages, source: .anon)
            spec.alignPMD = true
            spec.hugepage = r.chance(85) ? true : (r.chance(50) ? false : nil)
            spec.populate = r.chance(15)
            mappings.append(GenMapping(name: name, pages: pages, kind: .anon, thp: true))
            out.append(Statement(.mmap(spec)))
            // Mostly filled (PMD-mapped THPs); left empty, a read fault maps the huge zero page.
            if r.chance(70) { out.append(Statement(.store(PageRange(name), randomPattern(&r)))) }
            return
        case 2:
            kind = .shared
            pages = 1 + r.below(16)
            spec = MmapSpec(name: name, pages: pages, source: .anon)
            spec.shared = true
        case 3:
            kind = .file
            let file = newName("f")
            let filePages = 1 + r.below(16)
            files.append((file, filePages))
            out.append(Statement(.tempFile(name: file, pages: filePages, fill: r.chance(70) ? randomPattern(&r) : nil)))
            // Sometimes larger than the file: the pages past its end are SIGBUS.
            pages = r.chance(85) ? filePages : filePages + 1 + r.below(4)
            spec = MmapSpec(name: name, pages: pages, source: .file(file))
            spec.shared = r.chance(50)
            var m = GenMapping(name: name, pages: pages, kind: .file, thp: false)
            if pages > filePages { m.mark(filePages, pages - filePages, load: true, store: true) }
            mappings.append(m)
            out.append(Statement(.mmap(spec)))
            return
        case 4:
            hugetlbUsed = true
            kind = .hugetlb
            // One or two huge pages; a shorter length is rounded up to one by mmap.
            pages = [512, 512, 1024, 1 + r.below(511)][r.below(4)]
            spec = MmapSpec(name: name, pages: pages, source: .hugetlb)
            spec.shared = r.chance(50)
            mappings.append(GenMapping(name: name, pages: pages, kind: kind, thp: false))
            out.append(Statement(.mmap(spec)))
            if r.chance(70) { out.append(Statement(.store(PageRange(name), randomPattern(&r)))) }
            return
        case 5:
            kind = .device
            pages = 1 + r.below(4)
            spec = MmapSpec(name: name, pages: pages, source: .device(r.element(openDevices).name))
            spec.shared = r.chance(50)
        default:
            pages = r.weighted([30, 40, 20, 10]) == 0 ? 1 : [1, 1 + r.below(16), 17 + r.below(48), 64 + r.below(192)][r.below(4)]
            spec = MmapSpec(name: name, pages: pages, source: .anon)
            spec.populate = r.chance(10)
            if r.chance(4) { spec.hugepage = false }
        }
        let readOnly = r.chance(5)
        if readOnly { spec.prot = .r } else if r.chance(3) { spec.prot = Prot(read: false, write: true) }
        mappings.append(GenMapping(name: name, pages: pages, kind: kind, thp: false, readOnly: readOnly))
        out.append(Statement(.mmap(spec)))
    }

    mutating func storeOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r), let range = cpuRange(&r, m, store: true) else { return deviceOp(.read, &r, into: &out) }
        out.append(Statement(.store(range, randomPattern(&r))))
        return 1
    }

    mutating func loadOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r), let range = cpuRange(&r, m, store: false) else { return deviceOp(.snapshot, &r, into: &out) }
        out.append(Statement(.load(range)))
        return 1
    }

    mutating func deviceOp(_ command: RangeCommand, _ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r) else { return reopenOp(&r, into: &out) }
        guard let m = pickMapping(&r) else { mmapOp(&r, into: &out); return 1 }
        let range = anyRange(&r, m)
        out.append(Statement(.command(command, file: d.name, range: range)))
        switch command {
        case .migrateToDevice:
            // Migrated pages are where fork, mremap and another device get interesting.
            if r.chance(25) { followUps.append([.fork, .mremap, .deviceAccess][r.below(3)]) }
        case .exclusive:
            if r.chance(60) { followUps.append(.checkExclusive(device: d.name, mapping: m.name)) }
        default: break
        }
        return 1
    }

    mutating func writeOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r), let m = pickMapping(&r) else { return reopenOp(&r, into: &out) }
        out.append(Statement(.write(file: d.name, range: anyRange(&r, m), pattern: randomPattern(&r))))
        return 1
    }

    mutating func flagsOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r) else { return reopenOp(&r, into: &out) }
        out.append(Statement(.flags(file: d.name, value: 1)))
        // FAIL_ALLOC is one-shot: the next migration is where it bites.
        followUps.append(.migrate(device: d.name))
        return 1
    }

    mutating func releaseOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r) else { return reopenOp(&r, into: &out) }
        out.append(Statement(.release(file: d.name, range: nil)))
        return 1
    }

    mutating func closeOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r), let k = devices.firstIndex(where: { $0.name == d.name }) else {
            return reopenOp(&r, into: &out)
        }
        devices[k].open = false
        out.append(Statement(.close(file: d.name)))
        return 1
    }

    /// Opens a device file again (a new name, any unit).
    mutating func reopenOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard !freeUnits.isEmpty else { return deviceOp(.snapshot, &r, into: &out) }
        let name = newName("d")
        let unit = r.element(freeUnits)
        devices.append(GenDevice(name: name, unit: unit, open: true))
        out.append(Statement(.open(file: name, unit: unit)))
        return 1
    }

    mutating func munmapOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r), let k = mappings.firstIndex(where: { $0.name == m.name }) else { return 0 }
        var range = anyRange(&r, m)
        // Whole unmaps would retire the mapping; partial ones (PMD splits, hugetlb's EINVAL) are the
        // interesting ones.
        if case .whole = range.form, m.pages > 1, r.chance(70) {
            range = PageRange(m.name, .span(m.pages / 2, m.pages))
        }
        let (first, count) = range.resolved(mappingPages: m.pages)
        if m.splits(first, count) { mappings[k].mark(first, count, load: true, store: true) }
        out.append(Statement(.munmap(range)))
        return 1
    }

    mutating func mprotectOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r), let k = mappings.firstIndex(where: { $0.name == m.name }) else { return 0 }
        let range = anyRange(&r, m)
        let (first, count) = range.resolved(mappingPages: m.pages)
        // A hugetlb range off its huge page boundaries is EINVAL and changes nothing.
        let applies = m.splits(first, count)
        let prot: Prot
        switch r.weighted([50, 28, 8, 14]) {
        case 0:
            // A PROT_NONE hole: device reads across it get EFAULT, snapshots show it.
            prot = .none
            if applies { mappings[k].mark(first, count, load: true, store: true) }
        case 1:
            prot = .r
            if applies { mappings[k].mark(first, count, load: false, store: true) }
        case 2:
            // Write-only: the CPU still loads (x86), hmm_range_fault() and migration refuse it (no VM_READ).
            prot = Prot(read: false, write: true)
            if applies && (m.kind == .anon || m.kind == .shared) { mappings[k].clear(first, count) }
        default:
            prot = .rw
            if m.kind == .anon || m.kind == .shared {
                // Pages unmapped earlier stay unmapped: clear only what was a protection.
                mappings[k].clear(first, count)
            }
        }
        out.append(Statement(.mprotect(range, prot)))
        if !prot.read && r.chance(50) { followUps.append(.deviceAccess) }
        return 1
    }

    mutating func madviseOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r) else { return 0 }
        let advice = [AdviceWord.dontneed, .dontneed, .dontneed, .hugepage, .nohugepage, .free, .collapse, .collapse][r.below(8)]
        let range = anyRange(&r, m)
        // The device file's pages are gone once zapped: touching them again is SIGBUS.
        if advice == .dontneed, m.kind == .device, let k = mappings.firstIndex(where: { $0.name == m.name }) {
            let (first, count) = range.resolved(mappingPages: m.pages)
            mappings[k].mark(first, count, load: true, store: true)
        }
        out.append(Statement(.madvise(range, advice)))
        // An emptied range of a THP mapping is where a read fault maps the huge zero page.
        if advice == .dontneed && m.thp && r.chance(30) { return 1 + loadOp(&r, into: &out) }
        return 1
    }

    mutating func mremapOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let m = pickMapping(&r), let k = mappings.firstIndex(where: { $0.name == m.name }) else { return 0 }
        let range = r.chance(60) ? PageRange(m.name) : anyRange(&r, m)
        let (first, count) = range.resolved(mappingPages: m.pages)
        let newPages = [count, count, count * 2, max(1, count / 2), count + 1 + r.below(8)][r.below(5)]
        var spec = MremapSpec(range: range, newName: newName("m"), pages: min(newPages, ScenarioLimits.pages))
        spec.mayMove = r.chance(85)
        if spec.mayMove && spec.pages == count && r.chance(15) { spec.dontUnmap = true }
        if r.chance(6), let other = mappings.last(where: { $0.name != m.name }), other.pages >= spec.pages {
            spec.target = PageRange(other.name, .page(0))
            spec.mayMove = true
            spec.dontUnmap = false
            if let o = mappings.firstIndex(where: { $0.name == other.name }) { mappings[o].mark(0, spec.pages, load: true, store: true) }
        }
        // The old range may be gone (moved) or empty; the new one may grow past a shared object's end.
        mappings[k].mark(first, count, load: !spec.dontUnmap, store: !spec.dontUnmap)
        var moved = GenMapping(name: spec.newName, pages: spec.pages, kind: m.kind, thp: false)
        for p in 0..<min(count, spec.pages) {
            moved.noLoad[p] = m.noLoad[first + p]
            moved.noStore[p] = m.noStore[first + p]
        }
        if spec.pages > count && (m.kind != .anon) { moved.mark(count, spec.pages - count, load: true, store: true) }
        mappings.append(moved)
        out.append(Statement(.mremap(spec)))
        if spec.pages > count && m.kind == .anon && r.chance(60) {
            out.append(Statement(.store(PageRange(spec.newName, .span(count, spec.pages)), randomPattern(&r))))
            return 2
        }
        return 1
    }

    mutating func forkOp(_ r: inout ScenarioRandom, into out: inout [Statement], depth: Int, budget: Int) -> Int {
        // The child sees the parent's names; what it makes ends with it.
        var child = self
        child.followUps.removeAll()
        for k in child.devices.indices { child.devices[k].inherited = true }
        var body: [Statement] = []
        var used = 1
        if r.chance(30) {
            used += child.reopenOp(&r, into: &body)
            followUps.removeAll()
        }
        let steps = 1 + r.below(min(4, max(1, budget - 2)))
        for _ in 0..<steps { used += child.step(&r, into: &body, depth: depth + 1, budget: 1) }
        counter = child.counter
        out.append(Statement(.fork(body)))
        return used
    }

    mutating func rawIoctlOp(_ r: inout ScenarioRandom, into out: inout [Statement]) -> Int {
        guard let d = pickDevice(&r), let m = pickMapping(&r) else { return reopenOp(&r, into: &out) }
        var raw: RawIoctl
        switch r.below(6) {
        case 0: raw = RawIoctl(file: d.name, request: .encoded(nr: UInt64(10 + r.below(20)), size: 40, dir: 3))
        case 5:
            // Huge counts the prologue lets through (or, at 2^52 pages, one that wraps): the bounce
            // buffer's vmalloc() fails past the machine's memory, the walks stop at the mapping's end.
            let commands: [DmirrorCommand] = [.read, .write, .readUnlocked, .migrateToDevice, .migrateToSystem, .exclusive,
                                              .snapshot, .checkExclusive]
            raw = RawIoctl(file: d.name, request: .command(r.element(commands)))
            raw.npages = [UInt64(1) << 19, 1 << 36, 1 << 51, 1 << 52][r.below(4)]
        case 1: raw = RawIoctl(file: d.name, request: .encoded(nr: UInt64(r.below(10)), size: UInt64([0, 8, 39, 41, 64][r.below(5)]), dir: 3))
        case 2:
            raw = RawIoctl(file: d.name, request: .command([.read, .snapshot, .migrateToDevice][r.below(3)]))
            raw.npages = 0
        default:
            raw = RawIoctl(file: d.name, request: .command([.read, .snapshot, .migrateToSystem, .checkExclusive][r.below(4)]))
            raw.npages = UInt64(1 + r.below(m.pages))
        }
        raw.address = .page(PageRange(m.name, .page(0)), plus: r.chance(25) ? UInt64(1 + r.below(4095)) : 0)
        out.append(Statement(.ioctl(raw)))
        return 1
    }
}
