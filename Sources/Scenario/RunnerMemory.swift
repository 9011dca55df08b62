import ABI
import Harness
import MachineInterface

// The mm operations of a scenario: temporary files, mmap, munmap, mprotect,
// madvise, mremap, CPU loads and stores, each with its effect on the shadow model.

/// Why an operation does not run (its mapping or file was never made).
struct Skip: Error {
    let why: String
}

/// A page range of a mapping, where it is now.
struct ResolvedRange {
    let address: UInt64
    let vpn: UInt64
    /// The range's first page in its mapping (what patterns are indexed by) and its length.
    let first: Int
    let count: Int
}

extension ScenarioRunner {
    func execute(_ statement: Statement, in p: ProcessState, violations: inout [String]) -> Outcome {
        switch statement.operation {
        case .open(let file, let unit): return open(file, unit: unit, in: p)
        case .close(let file): return close(file, in: p, violations: &violations)
        case .tempFile(let name, let pages, let fill): return tempFile(name, pages: pages, fill: fill, in: p)
        case .mmap(let spec): return mmap(spec, in: p)
        case .munmap(let range):
            return withRange(range, p) { r in
                do throws(Errno) {
                    try p.machine.munmap(r.address, length: r.count * p.pageSize)
                    p.shadow.unmap(r.vpn, UInt64(r.count))
                    return Outcome(.ok)
                } catch { return Outcome(OperationResult(.errno(error))) }
            }
        case .mprotect(let range, let prot): return withRange(range, p) { mprotect($0, prot, in: p) }
        case .madvise(let range, let advice): return withRange(range, p) { madvise($0, advice, in: p) }
        case .mremap(let spec): return mremap(spec, in: p)
        case .load(let range):
            return withRange(range, p) { r in load(statement, r, in: p, violations: &violations) }
        case .store(let range, let pattern):
            return withRange(range, p) { r in
                let bytes = pattern.bytes(pages: r.first, count: r.count, pageSize: p.pageSize)
                // A store that faults half way leaves a prefix written, and shared pages outlive the
                // process (a forked child that dies here): they may hold either until the store is done.
                for k in 0..<r.count { p.shadow.write(r.vpn + UInt64(k), pageData(pattern, r.first + k), certain: false) }
                emit(ResultLine.pending(statement, depth: p.depth))
                bytes.withUnsafeBytes { p.machine.store(r.address, from: $0) }
                for k in 0..<r.count { p.shadow.write(r.vpn + UInt64(k), pageData(pattern, r.first + k), certain: true) }
                return Outcome(.ok)
            }
        case .fork: fatalError("fork blocks run in runFork")
        case .command(let command, let file, let range):
            return rangeCommand(command, file: file, range: range, in: p, violations: &violations)
        case .write(let file, let range, let pattern): return deviceWrite(file, range, pattern, in: p)
        case .release(let file, let range): return release(file, range, in: p, violations: &violations)
        case .flags(let file, let value):
            return withDevice(file, p) { h in perform(h, .flags, addr: 0, ptr: 0, npages: value) }
        case .ioctl(let raw): return rawIoctl(raw, in: p, violations: &violations)
        }
    }

    /// The pattern page as the shadow stores it (a fill is the same on every page).
    func pageData(_ pattern: Pattern, _ page: Int) -> PageData {
        switch pattern {
        case .zero, .fill(0): .zero
        case .fill: .pattern(pattern, 0)
        default: .pattern(pattern, page)
        }
    }

    /// Where `range` is now, or why the operation is skipped.
    func resolve(_ range: PageRange, _ p: ProcessState) -> Result<ResolvedRange, Skip> {
        guard case .mapping(let base, let pages, let why)? = p.values[range.mapping] else {
            return .failure(Skip(why: "\(range.mapping) is not a mapping here"))
        }
        guard let base else { return .failure(Skip(why: "\(range.mapping): \(why)")) }
        let (first, count) = range.resolved(mappingPages: pages)
        let address = base + UInt64(first * p.pageSize)
        return .success(ResolvedRange(address: address, vpn: address / UInt64(p.pageSize), first: first, count: count))
    }

    func withRange(_ range: PageRange, _ p: ProcessState, _ body: (ResolvedRange) -> Outcome) -> Outcome {
        switch resolve(range, p) {
        case .success(let r): body(r)
        case .failure(let skip): Outcome(OperationResult(.skipped(skip.why)))
        }
    }

    func tempFile(_ name: String, pages: Int, fill: Pattern?, in p: ProcessState) -> Outcome {
        let size = pages * p.pageSize
        let object = ShadowObject(pages: (0..<pages).map { page in fill.map { PageContent([pageData($0, page)]) } ?? .zero })
        do throws(Errno) {
            let file = try p.machine.createTemporaryFile(size: size)
            if let fill {
                let bytes = fill.bytes(pages: 0, count: pages, pageSize: p.pageSize)
                var result: Result<Int, Errno> = .success(0)
                bytes.withUnsafeBytes { raw in
                    do throws(Errno) { result = .success(try file.pwrite(raw, offset: 0)) } catch { result = .failure(error) }
                }
                guard try result.get() == size else { throw Errno.EIO }
            }
            p.values[name] = .tempFile(file, object, why: "")
            return Outcome(.ok)
        } catch {
            p.values[name] = .tempFile(nil, object, why: "file failed")
            return Outcome(OperationResult(.errno(error)))
        }
    }

    func mmap(_ spec: MmapSpec, in p: ProcessState) -> Outcome {
        let ps = p.pageSize
        let length = spec.pages * ps
        var flags: MapFlags = spec.shared ? .shared : .private
        if spec.populate { flags.insert(.populate) }
        let source: MappingSource
        var object: ShadowObject?
        var filePrivate = false
        var fromDevice = false
        switch spec.source {
        case .anon:
            flags.insert(.anonymous)
            source = .anonymous
        case .hugetlb:
            flags.formUnion([.anonymous, .hugetlb])
            source = .anonymous
            let huge = max(p.machine.defaultHugePageSize, ps)
            p.machine.reserveHugePages((length + huge - 1) / huge)
        case .file(let name):
            guard case .tempFile(let file?, let o, _)? = p.values[name] else {
                p.values[spec.name] = .mapping(base: nil, pages: spec.pages, why: "its file \(name) was not made")
                return Outcome(OperationResult(.skipped("\(name): file failed")))
            }
            source = .file(file)
            object = o
            filePrivate = !spec.shared
        case .device(let name):
            guard case .device(let handle?, let why)? = p.values[name] else {
                p.values[spec.name] = .mapping(base: nil, pages: spec.pages, why: "its device file \(name) is not open")
                return Outcome(OperationResult(.skipped("\(name): not open")))
            }
            _ = why
            source = .device(handle.device)
            fromDevice = true
        }
        let pmd = UInt64(max(p.machine.pmdPageSize, ps))
        let reserve = spec.alignPMD ? length + Int(pmd) : length
        let base: UInt64
        do throws(Errno) {
            let mapped = try p.machine.mmap(address: nil, length: reserve, protection: spec.prot.protection, flags: flags,
                                            source: source, offset: spec.offset * ps)
            base = spec.alignPMD ? (mapped + pmd - 1) & ~(pmd - 1) : mapped
            if spec.alignPMD {
                // Trim the reservation to a PMD-aligned range (what hmm-tests does by hand).
                if base > mapped { try p.machine.munmap(mapped, length: Int(base - mapped)) }
                let end = base + UInt64(length), reservedEnd = mapped + UInt64(reserve)
                if reservedEnd > end { try p.machine.munmap(end, length: Int(reservedEnd - end)) }
            }
        } catch {
            p.values[spec.name] = .mapping(base: nil, pages: spec.pages, why: "mmap failed")
            return Outcome(OperationResult(.errno(error)))
        }
        p.values[spec.name] = .mapping(base: base, pages: spec.pages, why: "")
        // A hugetlb mapping's length is rounded up to whole huge pages.
        var mapped = spec.pages
        if case .hugetlb = spec.source {
            let huge = max(p.machine.defaultHugePageSize / ps, 1)
            mapped = (spec.pages + huge - 1) / huge * huge
        }
        if spec.shared && object == nil { object = ShadowObject(pages: Array(repeating: .zero, count: mapped)) }
        let first = base / UInt64(ps)
        for k in 0..<mapped {
            var page: ShadowPage
            if let object {
                let index = isFile(spec) ? spec.offset + k : k
                page = ShadowPage(kind: filePrivate ? .filePrivate(object, index) : .shared(object, index),
                                  readable: spec.prot.allowsLoad, state: .viaObject)
            } else {
                page = ShadowPage(kind: .anon, readable: spec.prot.allowsLoad, state: .own(.zero))
            }
            if case .hugetlb = spec.source { page.hugetlb = true }
            page.zapFaults = fromDevice
            p.shadow.pages[first + UInt64(k)] = page
            // MAP_POPULATE write-faults a private writable mapping: the file pages are copied.
            if filePrivate && spec.populate && spec.prot.write { p.shadow.breakCOW(first + UInt64(k)) }
        }
        if let huge = spec.hugepage {
            do throws(Errno) {
                try p.machine.madvise(base, length: length, advice: huge ? .hugePage : .noHugePage)
            } catch {
                return Outcome(OperationResult(.errno(error)))
            }
        }
        return Outcome(.ok)
    }

    func isFile(_ spec: MmapSpec) -> Bool {
        if case .file = spec.source { return true }
        return false
    }

    func mprotect(_ r: ResolvedRange, _ prot: Prot, in p: ProcessState) -> Outcome {
        do throws(Errno) {
            try p.machine.mprotect(r.address, length: r.count * p.pageSize, protection: prot.protection)
            for k in 0..<UInt64(r.count) { p.shadow.pages[r.vpn + k]?.readable = prot.allowsLoad }
            return Outcome(.ok)
        } catch {
            switch error {
            case .EINVAL, .EACCES: break
            case .ENOMEM:
                // mprotect changes the mapped pages from the start up to the first hole.
                for k in 0..<UInt64(r.count) {
                    guard p.shadow.pages[r.vpn + k] != nil else { break }
                    p.shadow.pages[r.vpn + k]?.readable = prot.allowsLoad
                }
            default:
                for k in 0..<UInt64(r.count) { p.shadow.pages[r.vpn + k]?.readable = nil }
            }
            return Outcome(OperationResult(.errno(error)))
        }
    }

    func madvise(_ r: ResolvedRange, _ advice: AdviceWord, in p: ProcessState) -> Outcome {
        var failure: Errno?
        do throws(Errno) {
            try p.machine.madvise(r.address, length: r.count * p.pageSize, advice: advice.advice)
        } catch {
            failure = error
        }
        // ENOMEM: a hole in the range; the advice still applied to every mapped part.
        let applied = failure == nil || failure == .ENOMEM
        let huge = UInt64(max(p.machine.defaultHugePageSize / p.pageSize, 1))
        let end = r.vpn + UInt64(r.count)
        for vpn in r.vpn..<end {
            guard let page = p.shadow.pages[vpn] else { continue }
            switch advice {
            case .dontneed:
                // hugetlb: only whole huge pages inside the range are zapped (the end is rounded down).
                if page.hugetlb {
                    let head = vpn / huge * huge
                    if head < r.vpn || head + huge > end { continue }
                }
                if applied { p.shadow.zap(vpn) } else { p.shadow.forget(vpn) }
            case .free:
                p.shadow.lazyFree(vpn)
            case .hugepage, .nohugepage, .collapse:
                break
            }
        }
        return Outcome(failure.map { OperationResult(.errno($0)) } ?? .ok)
    }

    func mremap(_ spec: MremapSpec, in p: ProcessState) -> Outcome {
        let r: ResolvedRange
        switch resolve(spec.range, p) {
        case .success(let resolved): r = resolved
        case .failure(let skip):
            if spec.newName != spec.range.mapping { p.values[spec.newName] = .mapping(base: nil, pages: spec.pages, why: skip.why) }
            return Outcome(OperationResult(.skipped(skip.why)))
        }
        var flags: RemapFlags = []
        if spec.mayMove { flags.insert(.mayMove) }
        if spec.dontUnmap { flags.insert(.dontUnmap) }
        var target: UInt64?
        if let to = spec.target {
            guard case .success(let t) = resolve(to, p) else {
                return Outcome(OperationResult(.skipped("\(to.mapping): not mapped")))
            }
            target = t.address
            flags.formUnion([.fixed, .mayMove])
        }
        let ps = p.pageSize
        let moved: UInt64
        do throws(Errno) {
            moved = try p.machine.mremap(r.address, oldSize: r.count * ps, newSize: spec.pages * ps, flags: flags,
                                         newAddress: target)
        } catch {
            if spec.newName == spec.range.mapping, case .mapping(let base, _, let why)? = p.values[spec.newName] {
                p.values[spec.newName] = .mapping(base: base, pages: spec.pages, why: why)
            } else {
                p.values[spec.newName] = .mapping(base: nil, pages: spec.pages, why: "mremap failed")
            }
            return Outcome(OperationResult(.errno(error)))
        }
        // A sub-range that moved is named from its own first page.
        p.values[spec.newName] = .mapping(base: moved, pages: spec.pages, why: "")
        // A hugetlb mapping is remapped in whole huge pages (align_hugetlb() rounds both lengths up).
        var count = r.count, newCount = spec.pages
        if p.shadow.pages[r.vpn]?.hugetlb == true {
            let huge = max(p.machine.defaultHugePageSize / ps, 1)
            count = (count + huge - 1) / huge * huge
            newCount = (newCount + huge - 1) / huge * huge
        }
        remapShadow(p.shadow, from: r.vpn, count: count, to: moved / UInt64(ps), newCount: newCount,
                    fixed: target != nil, dontUnmap: spec.dontUnmap)
        return Outcome(.ok)
    }

    /// mremap's effect on the pages: kept pages move, a shrunk tail is unmapped, a grown
    /// tail is the mapping's next pages, DONTUNMAP leaves the old range mapped and empty.
    func remapShadow(_ shadow: ShadowSpace, from old: UInt64, count: Int, to new: UInt64, newCount: Int,
                     fixed: Bool, dontUnmap: Bool) {
        let template = shadow.pages[old + UInt64(count) - 1]
        let keep = UInt64(min(count, newCount))
        if new != old {
            let saved = (0..<UInt64(count)).map { shadow.pages[old + $0] }
            if fixed { shadow.unmap(new, UInt64(newCount)) }
            shadow.move(from: old, to: new, count: keep)
            shadow.unmap(old + keep, UInt64(count) - keep)
            if dontUnmap {
                for (k, page) in saved.enumerated() {
                    guard let page else { continue }
                    shadow.pages[old + UInt64(k)] = page
                    shadow.zap(old + UInt64(k))
                }
            }
        } else if newCount < count {
            shadow.unmap(old + UInt64(newCount), UInt64(count - newCount))
        }
        guard newCount > count, let template else { return }
        for k in count..<newCount {
            var page = template
            let step = k - count + 1
            switch template.kind {
            case .anon: page.state = .own(.zero)
            case .shared(let o, let i): page.kind = .shared(o, i + step); page.state = .viaObject
            case .filePrivate(let o, let i): page.kind = .filePrivate(o, i + step); page.state = .viaObject
            }
            if page.zapFaults { page.state = .sigbus }
            shadow.pages[new + UInt64(k)] = page
        }
    }

    func load(_ statement: Statement, _ r: ResolvedRange, in p: ProcessState, violations: inout [String]) -> Outcome {
        let size = r.count * p.pageSize
        guard let bytes = loadBuffers.allocate(size) else { return Outcome(OperationResult(.errno(.ENOMEM))) }
        defer { loadBuffers.release(bytes) }
        emit(ResultLine.pending(statement, depth: p.depth))
        p.machine.load(r.address, into: bytes)
        let digest = TraceFormat.digest(UnsafeRawBufferPointer(bytes))
        if checking(p) {
            violations += ShadowChecker(state: state, process: p)
                .checkData(UnsafeRawBufferPointer(bytes), vpn: r.vpn, pages: r.count, what: "a CPU load")
        }
        return Outcome(OperationResult(.ok, digest: digest), dataPages: (r.first, r.count))
    }
}
