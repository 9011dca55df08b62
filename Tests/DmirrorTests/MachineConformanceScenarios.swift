import ABI
import MachineInterface
#if canImport(Glibc)
import Glibc
#endif

/// The conformance scenarios that need no fork (see MachineConformanceSupport.swift).
enum ConformanceScenarios {
    static let rw: Protection = [.read, .write]
    static let privateAnon: MapFlags = [.private, .anonymous]

    // MARK: Anonymous memory

    /// mmap (fixed, fixed-noreplace, hints), munmap, mprotect and madvise on private anonymous memory.
    static func anonymousBasics(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let res = try log.reserve(16)
        // Never munmap a range twice from a defer: once unmapped, another test's mmap may own it.
        var owned = true
        defer { if owned { try? m.munmap(res, length: 16 * page) } }
        let a = res + 2 * P

        let fixed = log.call("mmap fixed 8p at res+2p") { () throws(Errno) -> UInt64 in
            try m.mmap(address: a, length: 8 * page, protection: rw, flags: privateAnon.union(.fixed),
                       source: .anonymous, offset: 0)
        }
        log.note("fixed mapping at \(fixed.map { log.offset($0, from: res) } ?? "-")")
        log.note("fresh pages: \(log.pattern(a, pages: 8, tag: 1))")
        log.fill(a, pages: 8, tag: 1)
        log.note("filled: \(log.pattern(a, pages: 8, tag: 1)) first ints \(log.firstInts(a, pages: 8))")

        log.call("munmap middle 2p") { () throws(Errno) in try m.munmap(a + 3 * P, length: 2 * page) }
        log.note("left \(log.pattern(a, pages: 3, tag: 1)) right \(log.pattern(a + 5 * P, pages: 3, tag: 1, firstPage: 5))")
        log.call("munmap of the hole again") { () throws(Errno) in try m.munmap(a + 3 * P, length: 2 * page) }
        log.call("munmap unaligned") { () throws(Errno) in try m.munmap(a + 1, length: page) }
        log.call("munmap length 0") { () throws(Errno) in try m.munmap(a, length: 0) }

        log.call("mmap fixedNoReplace overlapping a mapping") { () throws(Errno) -> UInt64 in
            try m.mmap(address: a + 2 * P, length: 2 * page, protection: rw,
                       flags: privateAnon.union(.fixedNoReplace), source: .anonymous, offset: 0)
        }
        log.note("after failed noreplace: \(log.pattern(a, pages: 3, tag: 1))")
        let noReplace = log.call("mmap fixedNoReplace into the hole") { () throws(Errno) -> UInt64 in
            try m.mmap(address: a + 3 * P, length: 2 * page, protection: rw,
                       flags: privateAnon.union(.fixedNoReplace), source: .anonymous, offset: 0)
        }
        log.note("noreplace mapping at \(noReplace.map { log.offset($0, from: a) } ?? "-") reads \(log.pattern(a + 3 * P, pages: 2, tag: 1))")

        // Hints.
        log.call("munmap 1p hole") { () throws(Errno) in try m.munmap(a + 3 * P, length: page) }
        if let hinted = log.call("mmap hint at the free page", { () throws(Errno) -> UInt64 in
            try m.mmap(address: a + 3 * P, length: page, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
        }) {
            log.note("free hint honored: \(hinted == a + 3 * P)")
            try? m.munmap(hinted, length: page)
        }
        if let hinted = log.call("mmap unaligned hint at the free page", { () throws(Errno) -> UInt64 in
            try m.mmap(address: a + 3 * P + 100, length: page, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
        }) {
            log.note("unaligned hint result: \(hinted == a + 3 * P ? "rounded down" : hinted == a + 3 * P + 100 ? "unaligned" : "elsewhere")")
            if hinted != a + 3 * P { try? m.munmap(hinted, length: page) }
        }
        if let hinted = log.call("mmap hint over a mapping", { () throws(Errno) -> UInt64 in
            try m.mmap(address: a, length: page, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
        }) {
            log.note("busy hint honored: \(hinted == a), page-aligned: \(hinted % P == 0)")
            try? m.munmap(hinted, length: page)
        }
        log.note("map: \(log.mapBits(res, pages: 16))")
        log.note("data: \(log.pattern(a, pages: 3, tag: 1))")

        // Argument errors.
        log.call("mmap fixed unaligned") { () throws(Errno) -> UInt64 in
            try m.mmap(address: a + 1, length: page, protection: rw, flags: privateAnon.union(.fixed), source: .anonymous, offset: 0)
        }
        log.call("mmap length 0") { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: 0, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
        }
        log.call("mmap neither shared nor private") { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: page, protection: rw, flags: .anonymous, source: .anonymous, offset: 0)
        }

        // mprotect. (A partial mprotect over a hole is observed in the fork suite: here a write would kill the test.)
        log.call("munmap 1p hole") { () throws(Errno) in try m.munmap(a + 3 * P, length: page) }
        log.call("mprotect starting in a hole") { () throws(Errno) in try m.mprotect(a + 3 * P, length: 2 * page, protection: rw) }
        log.call("mprotect of an unmapped page") { () throws(Errno) in try m.mprotect(a + 3 * P, length: page, protection: .read) }
        log.call("mprotect unaligned") { () throws(Errno) in try m.mprotect(a + 1, length: page, protection: .read) }
        log.call("mprotect length 0") { () throws(Errno) in try m.mprotect(a, length: 0, protection: .read) }
        log.call("mprotect read-only") { () throws(Errno) in try m.mprotect(a, length: 3 * page, protection: .read) }
        log.note("read-only data: \(log.pattern(a, pages: 3, tag: 1))")
        log.call("mprotect read-write") { () throws(Errno) in try m.mprotect(a, length: 3 * page, protection: rw) }
        log.call("mprotect none") { () throws(Errno) in try m.mprotect(a, length: page, protection: .none) }
        log.call("mprotect back to read-write") { () throws(Errno) in try m.mprotect(a, length: page, protection: rw) }
        log.note("data after mprotect: \(log.pattern(a, pages: 3, tag: 1))")

        // madvise.
        log.call("madvise dontneed 1p") { () throws(Errno) in try m.madvise(a + P, length: page, advice: .dontNeed) }
        log.note("after dontneed: \(log.pattern(a, pages: 3, tag: 1))")
        log.fill(a, pages: 3, tag: 2)
        log.fill(a + 4 * P, pages: 1, tag: 3)
        log.call("madvise dontneed across a hole") { () throws(Errno) in try m.madvise(a + 2 * P, length: 3 * page, advice: .dontNeed) }
        log.note("after dontneed across a hole: \(log.pattern(a, pages: 3, tag: 2)) \(log.pattern(a + 4 * P, pages: 1, tag: 3))")
        log.call("madvise on an unmapped page") { () throws(Errno) in try m.madvise(a + 3 * P, length: page, advice: .dontNeed) }
        log.call("madvise unaligned") { () throws(Errno) in try m.madvise(a + 1, length: page, advice: .dontNeed) }
        log.call("madvise length 0") { () throws(Errno) in try m.madvise(a, length: 0, advice: .dontNeed) }
        log.call("madvise hugepage") { () throws(Errno) in try m.madvise(a, length: 3 * page, advice: .hugePage) }
        log.call("madvise nohugepage") { () throws(Errno) in try m.madvise(a, length: 3 * page, advice: .noHugePage) }
        log.note("data after advice: \(log.pattern(a, pages: 3, tag: 2))")

        // A PMD-multiple anonymous mapping is THP aligned.
        let pmd = m.pmdPageSize
        if pmd > 0, let big = log.call("mmap anon pmd-size", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: pmd, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
        }) {
            log.note("pmd-size mapping pmd aligned: \(big % UInt64(pmd) == 0)")
            log.call("munmap pmd-size") { () throws(Errno) in try m.munmap(big, length: pmd) }
        }

        // The unmapped range is probed right away (another thread could map there later).
        log.call("munmap everything") { () throws(Errno) in try m.munmap(res, length: 16 * page) }
        owned = false
        log.call("mprotect of an unmapped range") { () throws(Errno) in try m.mprotect(res, length: 16 * page, protection: rw) }
        log.call("madvise of an unmapped range") { () throws(Errno) in try m.madvise(res, length: 16 * page, advice: .dontNeed) }
        log.call("munmap of an unmapped range") { () throws(Errno) in try m.munmap(res, length: 16 * page) }
        return log.lines
    }

    // MARK: mremap

    static func remap(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let res = try log.reserve(40)
        defer { try? m.munmap(res, length: 40 * page) }
        // Mappings outside the reservation this scenario owns (address -> length).
        var cleanup: [UInt64: Int] = [:]
        defer { for (a, n) in cleanup { try? m.munmap(a, length: n) } }

        let a = try log.must("mmap fixed 4p") { () throws(Errno) -> UInt64 in
            try m.mmap(address: res, length: 4 * page, protection: rw, flags: privateAnon.union(.fixed), source: .anonymous, offset: 0)
        }
        log.fill(a, pages: 4, tag: 1)
        // Grow in place into a hole.
        log.call("munmap 2p after the mapping") { () throws(Errno) in try m.munmap(res + 4 * P, length: 2 * page) }
        if let r = log.call("mremap grow 4p->6p in place", { () throws(Errno) -> UInt64 in
            try m.mremap(a, oldSize: 4 * page, newSize: 6 * page, flags: [], newAddress: nil)
        }) { log.note("grown at \(log.offset(r, from: res))") }
        log.note("grown data \(log.pattern(a, pages: 6, tag: 1)) pagemap \(log.pagemapBits(a, pages: 6))")
        log.call("mremap grow 6p->8p without MAYMOVE into a mapping") { () throws(Errno) -> UInt64 in
            try m.mremap(a, oldSize: 6 * page, newSize: 8 * page, flags: [], newAddress: nil)
        }
        log.fill(a, pages: 6, tag: 2)
        var b = a
        if let r = log.call("mremap grow 6p->8p MAYMOVE", { () throws(Errno) -> UInt64 in
            try m.mremap(a, oldSize: 6 * page, newSize: 8 * page, flags: .mayMove, newAddress: nil)
        }) {
            b = r
            if b != a { cleanup[b] = 8 * page }
            log.note("moved: \(r != a)")
            log.note("old range: \(log.mapBits(res, pages: 8))")
            log.note("moved data \(log.pattern(b, pages: 8, tag: 2)) pagemap \(log.pagemapBits(b, pages: 8))")
        }

        // Argument errors.
        log.call("mremap FIXED without MAYMOVE") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 8 * page, flags: .fixed, newAddress: res + 16 * P)
        }
        log.call("mremap DONTUNMAP without MAYMOVE") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 8 * page, flags: .dontUnmap, newAddress: nil)
        }
        log.call("mremap DONTUNMAP with different sizes") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 4 * page, flags: [.mayMove, .dontUnmap], newAddress: nil)
        }
        log.call("mremap FIXED overlapping the old range") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 8 * page, flags: [.mayMove, .fixed], newAddress: b + 2 * P)
        }
        log.call("mremap FIXED unaligned target") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 8 * page, flags: [.mayMove, .fixed], newAddress: res + 16 * P + 8)
        }
        log.call("mremap unaligned address") { () throws(Errno) -> UInt64 in
            try m.mremap(b + 8, oldSize: page, newSize: page, flags: .mayMove, newAddress: nil)
        }
        log.call("mremap new size 0") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 0, flags: .mayMove, newAddress: nil)
        }
        log.call("mremap of an unmapped address") { () throws(Errno) -> UInt64 in
            try m.mremap(res + 2 * P, oldSize: page, newSize: 2 * page, flags: .mayMove, newAddress: nil)
        }
        log.call("mremap old size beyond the mapping") { () throws(Errno) -> UInt64 in
            try m.mremap(b + 6 * P, oldSize: 4 * page, newSize: 4 * page, flags: .mayMove, newAddress: nil)
        }
        log.call("mremap old size 0 of a private mapping") { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 0, newSize: page, flags: .mayMove, newAddress: nil)
        }
        log.note("data after errors \(log.pattern(b, pages: 8, tag: 2))")

        // FIXED into the reservation.
        var c = b
        if let r = log.call("mremap FIXED to res+16p", { () throws(Errno) -> UInt64 in
            try m.mremap(b, oldSize: 8 * page, newSize: 8 * page, flags: [.mayMove, .fixed], newAddress: res + 16 * P)
        }) {
            c = r
            cleanup[b] = nil
            log.note("fixed target at \(log.offset(r, from: res)); old range mapped: \(log.isMapped(b))")
            log.note("fixed data \(log.pattern(c, pages: 8, tag: 2))")
        }

        // DONTUNMAP: the old range stays mapped and reads zero.
        var d = c
        if let r = log.call("mremap DONTUNMAP", { () throws(Errno) -> UInt64 in
            try m.mremap(c, oldSize: 8 * page, newSize: 8 * page, flags: [.mayMove, .dontUnmap], newAddress: nil)
        }) {
            d = r
            cleanup[d] = 8 * page
            log.note("moved: \(d != c); old range \(log.mapBits(c, pages: 8)) pagemap \(log.pagemapBits(c, pages: 8))")
            log.note("old range reads \(log.pattern(c, pages: 8, tag: 2)); new reads \(log.pattern(d, pages: 8, tag: 2))")
        }
        // DONTUNMAP + FIXED into the reservation.
        log.fill(c, pages: 2, tag: 3)
        if let r = log.call("mremap DONTUNMAP|FIXED to res+8p", { () throws(Errno) -> UInt64 in
            try m.mremap(c, oldSize: 2 * page, newSize: 2 * page, flags: [.mayMove, .dontUnmap, .fixed], newAddress: res + 8 * P)
        }) {
            log.note("target \(log.offset(r, from: res)): \(log.pattern(r, pages: 2, tag: 3)); old \(log.pattern(c, pages: 2, tag: 3))")
        }

        // Shrink.
        if let r = log.call("mremap shrink 8p->3p", { () throws(Errno) -> UInt64 in
            try m.mremap(d, oldSize: 8 * page, newSize: 3 * page, flags: [], newAddress: nil)
        }) {
            if cleanup[d] != nil { cleanup[d] = 3 * page }
            log.note("shrunk in place: \(r == d); kept \(log.pattern(d, pages: 3, tag: 2))")
        }
        log.call("mprotect of the shrunk tail") { () throws(Errno) in try m.mprotect(d + 3 * P, length: page, protection: rw) }
        log.call("mremap shrink unaligned size 3p->2p+1") { () throws(Errno) -> UInt64 in
            try m.mremap(d, oldSize: 3 * page, newSize: 2 * page + 1, flags: [], newAddress: nil)
        }
        if cleanup[d] != nil { cleanup[d] = 2 * page }
        log.note("after unaligned shrink: mapped \(log.isMapped(d + 2 * P)) data \(log.pattern(d, pages: 3, tag: 2))")

        // VMA merging decides what one mremap (other than a same-size FIXED
        // move) may span: the pieces of a split merge back; a fresh mapping
        // merges with its neighbour; two VMAs with different anon_vmas do not.
        // (Reservation pages follow v+8p, so nothing grows in place.)
        let v = res + 28 * P
        log.call("mmap fixed A 2p at res+28p") { () throws(Errno) -> UInt64 in
            try m.mmap(address: v, length: 2 * page, protection: rw, flags: privateAnon.union(.fixed), source: .anonymous, offset: 0)
        }
        log.fill(v, pages: 2, tag: 5)
        let bOrig = try log.anon(2)
        log.fill(bOrig, pages: 2, tag: 6)
        if log.call("mremap faulted B next to A", { () throws(Errno) -> UInt64 in
            try m.mremap(bOrig, oldSize: 2 * page, newSize: 2 * page, flags: [.mayMove, .fixed], newAddress: v + 2 * P)
        }) == nil { cleanup[bOrig] = 2 * page }
        log.call("mmap fixed fresh C 2p after B") { () throws(Errno) -> UInt64 in
            try m.mmap(address: v + 4 * P, length: 2 * page, protection: rw, flags: privateAnon.union(.fixed), source: .anonymous, offset: 0)
        }
        log.fill(v + 4 * P, pages: 2, tag: 7)
        log.call("mprotect read 1p of A") { () throws(Errno) in try m.mprotect(v + P, length: page, protection: .read) }
        log.call("mprotect it back") { () throws(Errno) in try m.mprotect(v + P, length: page, protection: rw) }
        if let r = log.call("mremap grow A+B (two anon_vmas)", { () throws(Errno) -> UInt64 in
            try m.mremap(v, oldSize: 4 * page, newSize: 5 * page, flags: .mayMove, newAddress: nil)
        }) { cleanup[r] = 5 * page }
        if let r = log.call("mremap grow B+C (moved B's vm_pgoff does not continue into C)", { () throws(Errno) -> UInt64 in
            try m.mremap(v + 2 * P, oldSize: 4 * page, newSize: 5 * page, flags: .mayMove, newAddress: nil)
        }) { cleanup[r] = 5 * page }
        log.call("mmap fixed fresh D 2p after C") { () throws(Errno) -> UInt64 in
            try m.mmap(address: v + 6 * P, length: 2 * page, protection: rw, flags: privateAnon.union(.fixed), source: .anonymous, offset: 0)
        }
        log.fill(v + 6 * P, pages: 2, tag: 8)
        if let r = log.call("mremap grow C+D (fresh D merged into faulted C)", { () throws(Errno) -> UInt64 in
            try m.mremap(v + 4 * P, oldSize: 4 * page, newSize: 5 * page, flags: .mayMove, newAddress: nil)
        }) {
            cleanup[r] = 5 * page
            log.note("C+D old range mapped: \(log.isMapped(v + 4 * P)) \(log.isMapped(v + 7 * P))")
            log.note("C+D moved data \(log.pattern(r, pages: 2, tag: 7)) \(log.pattern(r + 2 * P, pages: 2, tag: 8)) \(log.pattern(r + 4 * P, pages: 1, tag: 0))")
        }
        if let r = log.call("mremap grow A (split and merged back)", { () throws(Errno) -> UInt64 in
            try m.mremap(v, oldSize: 2 * page, newSize: 3 * page, flags: .mayMove, newAddress: nil)
        }) {
            cleanup[r] = 3 * page
            log.note("A old range mapped: \(log.isMapped(v)) \(log.isMapped(v + P)); moved data \(log.pattern(r, pages: 3, tag: 5))")
        }
        // (Not a map of the whole region: where a move lands depends on the layout, and may be a hole here.)

        // Shared anonymous memory grows and moves too.
        let s = try log.anon(2, shared: true)
        log.fill(s, pages: 2, tag: 4)
        if let r = log.call("mremap shared grow MAYMOVE", { () throws(Errno) -> UInt64 in
            try m.mremap(s, oldSize: 2 * page, newSize: 4 * page, flags: .mayMove, newAddress: nil)
        }) {
            log.note("shared moved data \(log.pattern(r, pages: 2, tag: 4))")
            cleanup[r] = 4 * page
        } else {
            cleanup[s] = 2 * page
        }
        return log.lines
    }

    // MARK: Files

    static func files(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let f = try log.must("createTemporaryFile") { () throws(Errno) -> any MachineFile in
            try m.createTemporaryFile(size: 2 * page + 100)
        }
        var mappings: [(UInt64, Int)] = []
        defer {
            for (a, n) in mappings { try? m.munmap(a, length: n) }
        }

        func pread(_ label: String, _ offset: Int, _ count: Int) -> [UInt8] {
            var bytes = [UInt8](repeating: 0xAA, count: count)
            let n = bytes.withUnsafeMutableBytes { buffer in
                log.call("pread \(label)") { () throws(Errno) -> Int in try f.pread(into: buffer, offset: offset) }
            }
            log.note("pread \(label) returned \(n.map(String.init) ?? "-")")
            return Array(bytes.prefix(n ?? 0))
        }
        func pwrite(_ label: String, _ bytes: [UInt8], _ offset: Int) {
            let n = bytes.withUnsafeBytes { buffer in
                log.call("pwrite \(label)") { () throws(Errno) -> Int in try f.pwrite(buffer, offset: offset) }
            }
            log.note("pwrite \(label) returned \(n.map(String.init) ?? "-")")
        }
        func summary(_ bytes: [UInt8]) -> String {
            var runs: [String] = []
            var i = 0
            while i < bytes.count {
                var j = i
                while j < bytes.count && bytes[j] == bytes[i] { j += 1 }
                runs.append("\(bytes[i])x\(j - i)")
                i = j
            }
            return runs.joined(separator: " ")
        }

        log.note("fresh file: \(summary(pread("fresh", 0, 3 * page)))")
        pwrite("page 0", [UInt8](repeating: 1, count: page), 0)
        pwrite("page 1 head", [UInt8](repeating: 2, count: 100), page)
        log.note("read back: \(summary(pread("0..3p", 0, 3 * page)))")
        log.note("straddling EOF: \(summary(pread("EOF-10", 2 * page + 90, 100)))")
        log.note("at EOF: \(summary(pread("at EOF", 2 * page + 100, 10)))")
        log.note("beyond EOF: \(summary(pread("beyond EOF", 5 * page, 10)))")
        let one = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { one.deallocate() }
        log.call("pread negative offset") { () throws(Errno) -> Int in try f.pread(into: one, offset: -1) }
        pwrite("extending at 4p+5", [UInt8](repeating: 3, count: 10), 4 * page + 5)
        log.note("gap and extension: \(summary(pread("2p..5p", 2 * page, 3 * page)))")

        // MAP_SHARED: sees pwrite data, writes through to pread.
        if let s = log.call("mmap shared 3p", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: 3 * page, protection: rw, flags: .shared, source: .file(f), offset: 0)
        }) {
            mappings.append((s, 3 * page))
            log.note("shared sees: \(summary(m.loadBytes(s, count: 3 * page)))")
            [UInt8](repeating: 9, count: 8).withUnsafeBytes { m.store(s + P + 200, from: $0) }
            m.storeInt32(s + 2 * P + 4, 0x0505_0505)
            log.note("write-through: \(summary(pread("1p..3p", page, 2 * page)))")
            pwrite("page 2 middle", [UInt8](repeating: 7, count: 16), 2 * page + 1000)
            log.note("shared sees pwrite: \(summary(m.loadBytes(s + 2 * P, count: page)))")
            log.note("shared pagemap \(log.pagemapBits(s, pages: 3))")
            log.call("madvise dontneed shared file page") { () throws(Errno) in try m.madvise(s + P, length: page, advice: .dontNeed) }
            log.note("after dontneed: \(summary(m.loadBytes(s + P, count: page)))")
        }

        // MAP_PRIVATE: CPU writes are private; untouched pages follow the file.
        if let p = log.call("mmap private 2p at offset 1p", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: 2 * page, protection: rw, flags: .private, source: .file(f), offset: page)
        }) {
            mappings.append((p, 2 * page))
            log.note("private sees: \(summary(m.loadBytes(p, count: 2 * page)))")
            pwrite("page 1 after a read fault", [UInt8](repeating: 4, count: 50), page)
            log.note("private sees pwrite after read fault: \(summary(m.loadBytes(p, count: 100)))")
            m.storeInt32(p, -1)
            log.note("private after CPU write: \(summary(m.loadBytes(p, count: 100)))")
            log.note("file after private CPU write: \(summary(pread("1p", page, 100)))")
            pwrite("page 1 after COW", [UInt8](repeating: 6, count: 10), page)
            log.note("private after COW sees: \(summary(m.loadBytes(p, count: 100)))")
            pwrite("page 2 untouched", [UInt8](repeating: 8, count: 10), 2 * page + 2000)
            log.note("private untouched page: \(summary(m.loadBytes(p + P, count: page)))")
            log.call("madvise dontneed private file page") { () throws(Errno) in try m.madvise(p, length: page, advice: .dontNeed) }
            log.note("private after dontneed: \(summary(m.loadBytes(p, count: 100)))")
            log.note("private pagemap \(log.pagemapBits(p, pages: 2))")
        }
        log.call("mmap file unaligned offset") { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: page, protection: rw, flags: .shared, source: .file(f), offset: 100)
        }

        // A short file: the partial last page reads zeros past EOF (never touch a page wholly past EOF: SIGBUS).
        let short = try log.must("createTemporaryFile short") { () throws(Errno) -> any MachineFile in
            try m.createTemporaryFile(size: 100)
        }
        pwrite("short", [UInt8](repeating: 5, count: 100), 0)
        if let s = log.call("mmap short file 2p", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: 2 * page, protection: rw, flags: .shared, source: .file(short), offset: 0)
        }) {
            mappings.append((s, 2 * page))
            log.note("short mapping page 0: \(summary(m.loadBytes(s, count: page)))")
            log.note("short pagemap \(log.pagemapBits(s, pages: 2))")
            m.storeInt32(s + 200, 0x0101_0101)
            var bytes = [UInt8](repeating: 0xAA, count: page)
            let n = bytes.withUnsafeMutableBytes { buffer in
                log.call("pread short") { () throws(Errno) -> Int in try short.pread(into: buffer, offset: 0) }
            }
            log.note("short file reads \(n.map(String.init) ?? "-") bytes after a store past EOF")
        }
        log.call("close short") { () throws(Errno) in try short.close() }

        log.call("close") { () throws(Errno) in try f.close() }
        if let (s, _) = mappings.first {
            log.note("mapping after close: \(summary(m.loadBytes(s, count: 16)))")
        }
        return log.lines
    }

    // MARK: Pagemap

    static func pagemap(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let a = try log.anon(4)
        defer { try? m.munmap(a, length: 4 * page) }
        log.note("untouched: \(log.pagemapBits(a, pages: 4))")
        _ = m.loadInt32(a)
        m.storeInt32(a + P, 1)
        log.note("after load p0, store p1: \(log.pagemapBits(a, pages: 4))")
        log.call("madvise dontneed p0..p1") { () throws(Errno) in try m.madvise(a, length: 2 * page, advice: .dontNeed) }
        log.note("after dontneed: \(log.pagemapBits(a, pages: 4)) reads \(log.firstInts(a, pages: 2))")

        let none = try log.anon(1, .none)
        defer { try? m.munmap(none, length: page) }
        log.note("PROT_NONE: \(log.pagemapBits(none))")

        let populated = try log.must("mmap populate") { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: 2 * page, protection: rw, flags: privateAnon.union(.populate), source: .anonymous, offset: 0)
        }
        defer { try? m.munmap(populated, length: 2 * page) }
        log.note("MAP_POPULATE: \(log.pagemapBits(populated, pages: 2))")

        let shared = try log.anon(2, shared: true)
        defer { try? m.munmap(shared, length: 2 * page) }
        m.storeInt32(shared, 42)
        log.note("shared after store: \(log.pagemapBits(shared, pages: 2))")
        log.call("madvise dontneed shared") { () throws(Errno) in try m.madvise(shared, length: 2 * page, advice: .dontNeed) }
        log.note("shared after dontneed: \(log.pagemapBits(shared, pages: 2)) reads \(m.loadInt32(shared))")

        // A hole: pagemap reads zero entries for unmapped addresses.
        let hole = try log.anon(3)
        log.call("munmap") { () throws(Errno) in try m.munmap(hole + P, length: page) }
        log.note("hole: \(log.pagemapBits(hole + P))")
        try? m.munmap(hole, length: page)
        try? m.munmap(hole + 2 * P, length: page)

        // THP (madvise mode on both): a read fault maps the huge zero folio; a
        // dontneed of one page splits the PMD.
        let pmd = m.pmdPageSize
        if pmd > 0 {
            let big = try log.must("mmap 2 pmd") { () throws(Errno) -> UInt64 in
                try m.mmap(address: nil, length: 2 * pmd, protection: rw, flags: privateAnon, source: .anonymous, offset: 0)
            }
            defer { try? m.munmap(big, length: 2 * pmd) }
            let h = (big + UInt64(pmd) - 1) & ~UInt64(pmd - 1)
            let last = UInt64(pmd) - P
            log.call("madvise hugepage") { () throws(Errno) in try m.madvise(h, length: pmd, advice: .hugePage) }
            _ = m.loadInt32(h)
            log.note("huge read: first \(log.pagemapBits(h)) last \(log.pagemapBits(h + last))")
            log.call("madvise dontneed 1p of the pmd") { () throws(Errno) in try m.madvise(h + 5 * P, length: page, advice: .dontNeed) }
            log.note("after split: \(log.pagemapBits(h + 4 * P, pages: 3)) last \(log.pagemapBits(h + last))")
            log.call("madvise nohugepage") { () throws(Errno) in try m.madvise(h, length: pmd, advice: .noHugePage) }
            log.call("madvise dontneed pmd") { () throws(Errno) in try m.madvise(h, length: pmd, advice: .dontNeed) }
            m.storeInt32(h, 7)
            log.note("nohugepage write: first \(log.pagemapBits(h, pages: 2)) last \(log.pagemapBits(h + last)) reads \(m.loadInt32(h))")
        }
        return log.lines
    }

    // MARK: Sizes

    static func sizes(_ m: any Machine) throws -> [String] {
        ["pageSize \(m.pageSize)", "pmdPageSize \(m.pmdPageSize)", "defaultHugePageSize \(m.defaultHugePageSize)"]
    }

    // MARK: userfaultfd

    static func userfault(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let npages = 8
        let a = try log.anon(npages)
        defer { try? m.munmap(a, length: npages * page) }
        let uffd = try log.must("userfaultfd") { () throws(Errno) -> any UserfaultFile in try m.userfaultfd() }
        defer { uffd.close() }
        let stop = try log.must("eventfd") { () throws(Errno) -> any EventFile in try m.eventfd() }
        defer { stop.close() }
        log.call("register unaligned") { () throws(Errno) in try uffd.registerMissing(a + 1, length: page) }
        log.call("register") { () throws(Errno) in try uffd.registerMissing(a, length: npages * page) }

        final class Faults: @unchecked Sendable {
            let lock = NSLockish()
            var offsets: [UInt64] = []
            var copyErrors: [String] = []
        }
        let faults = Faults()
        let base = a
        let handler = try log.must("handler thread") { () throws(Errno) -> any MachineThread in
            try m.startThread {
                let source = UnsafeMutableBufferPointer<Int32>.allocate(capacity: page / 4)
                defer { source.deallocate() }
                while true {
                    let fault: UInt64?
                    do { fault = try uffd.waitForFault(stop: stop) } catch {
                        faults.lock.withLock { faults.copyErrors.append("wait \(error)") }
                        return
                    }
                    guard let fault else { return }
                    let pageAddress = fault & ~(P - 1)
                    let index = (pageAddress - base) / P
                    for i in source.indices { source[i] = Int32(index) * 1000 + Int32(i % 1000) }
                    faults.lock.withLock { faults.offsets.append(fault - base) }
                    do {
                        try uffd.copy(to: pageAddress, from: UnsafeRawBufferPointer(source))
                    } catch {
                        faults.lock.withLock { faults.copyErrors.append("copy \(error)") }
                    }
                }
            }
        }
        // The CPU touches the pages one at a time, in order, on another thread.
        final class Loaded: @unchecked Sendable { var values: [Int32] = [] }
        let loaded = Loaded()
        let loader = try log.must("loader thread") { () throws(Errno) -> any MachineThread in
            try m.startThread {
                for p in 0..<(npages / 2) { loaded.values.append(m.loadInt32(base + UInt64(p) * P + 12)) }
            }
        }
        loader.join()
        log.note("sequential loads saw \(loaded.values)")
        // One bulk load over the rest (memcpy's access order is libc's business: log the set).
        let bulk = try log.must("bulk loader thread") { () throws(Errno) -> any MachineThread in
            try m.startThread {
                loaded.values = m.loadInt32s(base + UInt64(npages / 2) * P, count: npages / 2 * page / 4)
            }
        }
        bulk.join()
        try log.must("signal stop") { () throws(Errno) in try stop.signal(1) }
        handler.join()
        let offsets = faults.lock.withLock { faults.offsets }
        log.note("sequential fault offsets \(offsets.prefix(npages / 2).map { log.offset(base + $0, from: base) })")
        log.note("bulk fault offsets (sorted) \(offsets.dropFirst(npages / 2).sorted().map { log.offset(base + $0, from: base) })")
        log.note("handler errors \(faults.lock.withLock { faults.copyErrors })")
        let perPage = page / 4
        let bulkOK = (0..<(npages / 2)).allSatisfy { p in
            (0..<perPage).allSatisfy { i in loaded.values[p * perPage + i] == Int32(npages / 2 + p) * 1000 + Int32(i % 1000) }
        }
        log.note("bulk data as copied: \(bulkOK)")
        log.note("pagemap \(log.pagemapBits(a, pages: npages))")
        let again = UnsafeMutableRawBufferPointer.allocate(byteCount: page, alignment: 16)
        defer { again.deallocate() }
        again.initializeMemory(as: UInt8.self, repeating: 0)
        log.call("UFFDIO_COPY onto a present page") { () throws(Errno) in
            try uffd.copy(to: a, from: UnsafeRawBufferPointer(again))
        }
        return log.lines
    }

    // MARK: hugetlb

    /// Run only when the host has a free default huge page (never resizes the host's pool).
    static func hugetlb(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let hs = m.defaultHugePageSize, page = log.page
        let free0 = m.freeHugePages()
        func freeDelta() -> String { "free \(m.freeHugePages() - free0)" }
        log.note("default huge page size \(hs)")
        guard let h = log.call("mmap hugetlb", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: hs, protection: rw, flags: privateAnon.union(.hugetlb), source: .anonymous, offset: 0)
        }) else { return log.lines }
        log.note("after mmap: \(freeDelta()) aligned \(h % UInt64(hs) == 0)")
        log.note("untouched pagemap \(log.pagemapBits(h))")
        m.storeInt32s(h, count: hs / 4) { Int32($0) }
        let values = m.loadInt32s(h, count: hs / 4)
        log.note("after store: \(freeDelta()) data ok \(values.enumerated().allSatisfy { $0.element == Int32($0.offset) })")
        log.note("pagemap first \(log.pagemapBits(h)) last \(log.pagemapBits(h + UInt64(hs - page)))")
        log.call("munmap unaligned in a hugetlb mapping") { () throws(Errno) in try m.munmap(h + UInt64(page), length: page) }
        if let extra = log.call("mmap hugetlb beyond the pool", { () throws(Errno) -> UInt64 in
            try m.mmap(address: nil, length: hs * (free0 + 1), protection: rw, flags: privateAnon.union(.hugetlb), source: .anonymous, offset: 0)
        }) { try? m.munmap(extra, length: hs * (free0 + 1)) }
        log.call("munmap hugetlb") { () throws(Errno) in try m.munmap(h, length: hs) }
        log.note("after munmap: \(freeDelta())")
        return log.lines
    }
}

/// A pthread mutex for the scenario's little shared records.
final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
