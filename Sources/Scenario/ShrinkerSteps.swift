// What a statement defines and uses (for removing it with its dependents),
// and its simpler forms.

extension ScenarioShrinker {
    static func defines(_ op: Operation) -> Set<String> {
        switch op {
        case .open(let file, _): [file]
        case .tempFile(let name, _, _): [name]
        case .mmap(let spec): [spec.name]
        case .mremap(let spec): [spec.newName]
        default: []
        }
    }

    static func uses(_ op: Operation) -> Set<String> {
        switch op {
        case .open, .tempFile: return []
        case .close(let file), .flags(let file, _): return [file]
        case .mmap(let spec):
            switch spec.source {
            case .file(let f), .device(let f): return [f]
            case .anon, .hugetlb: return []
            }
        case .munmap(let r), .mprotect(let r, _), .madvise(let r, _), .load(let r), .store(let r, _): return [r.mapping]
        case .mremap(let spec): return Set([spec.range.mapping] + (spec.target.map { [$0.mapping] } ?? []))
        case .fork(let body): return body.reduce(into: Set<String>()) { $0.formUnion(uses($1.operation)) }
        case .command(_, let file, let r), .write(let file, let r, _): return [file, r.mapping]
        case .release(let file, let r): return Set([file] + (r.map { [$0.mapping] } ?? []))
        case .ioctl(let raw):
            if case .page(let p, _) = raw.address { return [raw.file, p.mapping] }
            return [raw.file]
        }
    }

    /// An mremap removed, its new name replaced by the old one in what follows
    /// (the statements keep working on the same memory, just not moved).
    static func remapBypasses(_ s: [Statement]) -> [[Statement]] {
        var out: [[Statement]] = []
        for (k, statement) in s.enumerated() {
            guard case .mremap(let spec) = statement.operation, spec.newName != spec.range.mapping else { continue }
            out.append(Array(s[..<k]) + renamed(Array(s[(k + 1)...]), spec.newName, to: spec.range.mapping))
        }
        return out
    }

    /// `statements` with mapping `old` called `new` (until something defines `old` again).
    static func renamed(_ statements: [Statement], _ old: String, to new: String) -> [Statement] {
        var out: [Statement] = []
        var active = true
        for var st in statements {
            if active {
                st.operation = renamed(st.operation, old, to: new)
                if defines(st.operation).contains(old) { active = false }
            }
            out.append(st)
        }
        return out
    }

    static func renamed(_ op: Operation, _ old: String, to new: String) -> Operation {
        func r(_ range: PageRange) -> PageRange { range.mapping == old ? PageRange(new, range.form) : range }
        switch op {
        case .munmap(let x): return .munmap(r(x))
        case .mprotect(let x, let p): return .mprotect(r(x), p)
        case .madvise(let x, let a): return .madvise(r(x), a)
        case .load(let x): return .load(r(x))
        case .store(let x, let p): return .store(r(x), p)
        case .command(let c, let f, let x): return .command(c, file: f, range: r(x))
        case .write(let f, let x, let p): return .write(file: f, range: r(x), pattern: p)
        case .release(let f, let x): return .release(file: f, range: x.map(r))
        case .mremap(var spec):
            spec.range = r(spec.range)
            spec.target = spec.target.map(r)
            return .mremap(spec)
        case .ioctl(var raw):
            if case .page(let p, let plus) = raw.address { raw.address = .page(r(p), plus: plus) }
            return .ioctl(raw)
        case .fork(let body): return .fork(renamed(body, old, to: new))
        default: return op
        }
    }

    /// Simpler forms of one operation (each still has to parse where it stands).
    static func simpler(_ op: Operation) -> [Operation] {
        switch op {
        case .open(let file, let unit): return unit == 0 ? [] : [.open(file: file, unit: 0)]
        case .close, .fork: return []
        case .tempFile(let name, let pages, let fill):
            var out: [Operation] = []
            if fill != nil { out.append(.tempFile(name: name, pages: pages, fill: nil)) }
            if pages > 1 { out += [.tempFile(name: name, pages: 1, fill: fill), .tempFile(name: name, pages: pages / 2, fill: fill)] }
            return out
        case .mmap(let spec): return simpler(spec).map(Operation.mmap)
        case .munmap(let r): return simpler(r).map(Operation.munmap)
        case .mprotect(let r, let p): return simpler(r).map { .mprotect($0, p) }
        case .madvise(let r, let a): return simpler(r).map { .madvise($0, a) }
        case .load(let r): return simpler(r).map(Operation.load)
        case .store(let r, let p): return simpler(r).map { .store($0, p) } + simpler(p).map { .store(r, $0) }
        case .command(let c, let f, let r): return simpler(r).map { .command(c, file: f, range: $0) }
        case .write(let f, let r, let p):
            return simpler(r).map { .write(file: f, range: $0, pattern: p) } + simpler(p).map { .write(file: f, range: r, pattern: $0) }
        case .release(let f, let r): return r == nil ? [] : [.release(file: f, range: nil)]
        case .flags(let f, let v): return v == 1 ? [] : [.flags(file: f, value: 1)]
        case .mremap(let spec):
            var out: [MremapSpec] = []
            for r in simpler(spec.range) { var s = spec; s.range = r; out.append(s) }
            if spec.pages > 1 { var s = spec; s.pages = max(1, spec.pages / 2); out.append(s) }
            if spec.dontUnmap { var s = spec; s.dontUnmap = false; out.append(s) }
            if spec.target != nil { var s = spec; s.target = nil; out.append(s) }
            return out.map(Operation.mremap)
        case .ioctl(let raw):
            var out: [RawIoctl] = []
            if raw.npages != 1 { var s = raw; s.npages = 1; out.append(s) }
            if raw.nullPointer { var s = raw; s.nullPointer = false; out.append(s) }
            if case .page(let p, let plus) = raw.address, plus != 0 { var s = raw; s.address = .page(p, plus: 0); out.append(s) }
            return out.map(Operation.ioctl)
        }
    }

    static func simpler(_ spec: MmapSpec) -> [MmapSpec] {
        var out: [MmapSpec] = []
        func with(_ change: (inout MmapSpec) -> Void) {
            var s = spec
            change(&s)
            if s != spec { out.append(s) }
        }
        if spec.pages > 1 {
            with { $0.pages = 1 }
            with { $0.pages = spec.pages / 2 }
        }
        with { $0.source = .anon; $0.offset = 0 }
        with { $0.shared = false }
        with { $0.populate = false }
        with { $0.hugepage = nil }
        with { $0.alignPMD = false }
        with { $0.prot = .rw }
        with { $0.offset = 0 }
        return out
    }

    static func simpler(_ r: PageRange) -> [PageRange] {
        switch r.form {
        case .whole: return [PageRange(r.mapping, .page(0))]
        case .page(let n): return n == 0 ? [] : [PageRange(r.mapping, .page(0))]
        case .span(let a, let b):
            var out = [PageRange(r.mapping, .page(a)), PageRange(r.mapping, .page(b - 1))]
            if b - a > 2 { out.append(PageRange(r.mapping, .span(a, a + (b - a) / 2))) }
            return out
        }
    }

    static func simpler(_ p: Pattern) -> [Pattern] {
        switch p {
        case .seq(0): []
        default: [.seq(0)]
        }
    }
}
