import ABI

// The statements of the scenario language, one parsing function per form.
// Each checks its arguments' syntax and meaning; `usage` strings are what an
// error line quotes.

extension ScenarioParser {
    static let usage: [String: String] = [
        "open": "open FILE UNIT",
        "close": "close FILE",
        "file": "file NAME PAGES [PATTERN]",
        "mmap": "mmap NAME PAGES anon|file F|hugetlb|dev D [shared] [prot=P] [offset=N] [align=pmd] [populate] [hugepage|nohugepage]",
        "munmap": "munmap RANGE",
        "mprotect": "mprotect RANGE none|r|w|x|rw|rx|wx|rwx",
        "madvise": "madvise RANGE hugepage|nohugepage|dontneed|free|collapse",
        "mremap": "mremap RANGE NEWNAME PAGES [maymove] [dontunmap] [to=NAME[N]]",
        "load": "load RANGE",
        "store": "store RANGE PATTERN",
        "write": "write FILE RANGE PATTERN",
        "release": "release FILE [RANGE]",
        "flags": "flags FILE fail_alloc|NUMBER",
        "ioctl": "ioctl FILE REQUEST|nr=N [size=N] [dir=none|r|w|rw] [addr=NAME[N][+BYTES]|addr=NUMBER] [npages=N] [ptr=buffer|null]",
    ]

    static var operationNames: String {
        (["open", "close", "file", "mmap", "munmap", "mprotect", "madvise", "mremap", "load", "store", "fork",
          "write", "release", "flags", "ioctl", "expect"] + RangeCommand.allCases.map(\.rawValue)).joined(separator: " ")
    }

    mutating func parseOperation(_ c: inout Cursor) throws(ScenarioError) -> Operation {
        let head = c.next()!
        guard head.kind == .word else {
            throw c.error(head.column, "expected an operation, found \"\(head.text)\" (operations: \(Self.operationNames))")
        }
        let word = head.text
        let usage = Self.usage[word] ?? "\(word) FILE RANGE"
        let operation: Operation
        switch word {
        case "open":
            let name = try c.name("a file name", usage: usage)
            let unit = try c.number("the device unit", usage: usage, maximum: 255)
            if case .device(true, let line)? = scope[name.text] {
                throw c.error(name.column, "device file \(name.text) is already open (line \(line)); close it first")
            }
            try bind(name, .device(open: true, line: lineNumber), c)
            operation = .open(file: name.text, unit: Int(unit))
        case "close":
            let name = try c.name("a device file", usage: usage)
            try checkOpenDevice(name, c)
            scope[name.text] = .device(open: false, line: lineNumber)
            operation = .close(file: name.text)
        case "file":
            let name = try c.name("a file name", usage: usage)
            let pages = try c.pageCount("the page count", usage: usage)
            let fill = c.atEnd ? nil : try parsePattern(&c, usage: usage)
            try bind(name, .tempFile(pages: pages, line: lineNumber), c)
            operation = .tempFile(name: name.text, pages: pages, fill: fill)
        case "mmap":
            operation = .mmap(try parseMmap(&c, usage: usage))
        case "munmap":
            operation = .munmap(try parseRange(&c, usage: usage))
        case "mprotect":
            let range = try parseRange(&c, usage: usage)
            operation = .mprotect(range, try parseProt(&c, usage: usage))
        case "madvise":
            let range = try parseRange(&c, usage: usage)
            let advice = try c.name("the advice", usage: usage)
            guard let value = AdviceWord(rawValue: advice.text) else {
                throw c.error(advice.column, "unknown advice \"\(advice.text)\" (usage: \(usage))")
            }
            operation = .madvise(range, value)
        case "mremap":
            operation = .mremap(try parseMremap(&c, usage: usage))
        case "load":
            operation = .load(try parseRange(&c, usage: usage))
        case "store":
            let range = try parseRange(&c, usage: usage)
            operation = .store(range, try parsePattern(&c, usage: usage))
        case "write":
            let file = try deviceName(&c, usage: usage)
            let range = try parseRange(&c, usage: usage)
            operation = .write(file: file, range: range, pattern: try parsePattern(&c, usage: usage))
        case "release":
            let file = try deviceName(&c, usage: usage)
            operation = .release(file: file, range: c.atEnd ? nil : try parseRange(&c, usage: usage))
        case "flags":
            let file = try deviceName(&c, usage: usage)
            guard let value = c.peek else { throw c.missing("the flag word", usage: usage) }
            if value.isWord("fail_alloc") {
                _ = c.next()
                operation = .flags(file: file, value: DmirrorFlags.failAlloc.rawValue)
            } else {
                operation = .flags(file: file, value: try c.number("the flag word", usage: usage))
            }
        case "ioctl":
            operation = .ioctl(try parseIoctl(&c, usage: usage))
        default:
            guard let command = RangeCommand(rawValue: word) else {
                throw c.error(head.column, "unknown operation \"\(word)\" (operations: \(Self.operationNames))")
            }
            let file = try deviceName(&c, usage: usage)
            operation = .command(command, file: file, range: try parseRange(&c, usage: usage))
        }
        try c.expectEnd(usage: usage)
        return operation
    }

    mutating func deviceName(_ c: inout Cursor, usage: String) throws(ScenarioError) -> String {
        let name = try c.name("a device file", usage: usage)
        try checkOpenDevice(name, c)
        return name.text
    }

    mutating func parseMmap(_ c: inout Cursor, usage: String) throws(ScenarioError) -> MmapSpec {
        let name = try c.name("a mapping name", usage: usage)
        let pages = try c.pageCount("the page count", usage: usage)
        let sourceWord = try c.name("the source (anon, file F, hugetlb or dev D)", usage: usage)
        let source: MapSource
        switch sourceWord.text {
        case "anon": source = .anon
        case "hugetlb": source = .hugetlb
        case "file":
            let file = try c.name("a file name", usage: usage)
            switch scope[file.text] {
            case .tempFile?: break
            case nil: throw c.error(file.column, "unknown file \(file.text) (make it first: file \(file.text) PAGES)")
            case let other?: throw c.error(file.column, "\(file.text) is \(other.kind) (line \(other.line)), not a file")
            }
            source = .file(file.text)
        case "dev":
            source = .device(try deviceName(&c, usage: usage))
        default:
            throw c.error(sourceWord.column, "unknown mapping source \"\(sourceWord.text)\" (usage: \(usage))")
        }
        var spec = MmapSpec(name: name.text, pages: pages, source: source)
        while let option = c.next() {
            switch option.kind == .word ? option.text : "" {
            case "shared": spec.shared = true
            case "private": spec.shared = false
            case "populate": spec.populate = true
            case "hugepage": spec.hugepage = true
            case "nohugepage": spec.hugepage = false
            case "prot":
                let value = try c.keyValue(option)
                spec.prot = try protValue(value, c, usage: usage)
            case "offset":
                let value = try c.keyValue(option)
                spec.offset = Int(try c.value(of: value, "the file offset (pages)", maximum: UInt64(ScenarioLimits.pages)))
            case "align":
                let value = try c.keyValue(option)
                guard value.isWord("pmd") else { throw c.error(value.column, "align= takes pmd") }
                spec.alignPMD = true
            default:
                throw c.error(option.column, "unknown mmap option \"\(option.text)\" (usage: \(usage))")
            }
        }
        try bind(name, .mapping(pages: pages, line: lineNumber), c)
        return spec
    }

    mutating func parseMremap(_ c: inout Cursor, usage: String) throws(ScenarioError) -> MremapSpec {
        let range = try parseRange(&c, usage: usage)
        let newName = try c.name("the new mapping's name", usage: usage)
        let pages = try c.pageCount("the new page count", usage: usage)
        var spec = MremapSpec(range: range, newName: newName.text, pages: pages)
        while let option = c.next() {
            switch option.kind == .word ? option.text : "" {
            case "maymove": spec.mayMove = true
            case "dontunmap": spec.dontUnmap = true
            case "to":
                guard let eq = c.next(), eq.isPunct("=") else { throw c.error(option.column + 2, "expected = after to") }
                _ = eq
                let target = try parseRange(&c, usage: usage)
                if case .span = target.form { throw c.error(option.column, "to= names one page: to=NAME[N]") }
                spec.target = target
            default:
                throw c.error(option.column, "unknown mremap option \"\(option.text)\" (usage: \(usage))")
            }
        }
        try bind(newName, .mapping(pages: pages, line: lineNumber), c)
        return spec
    }

    /// `NAME`, `NAME[N]` or `NAME[A:B]`, inside the mapping's pages.
    mutating func parseRange(_ c: inout Cursor, usage: String) throws(ScenarioError) -> PageRange {
        let name = try c.name("a mapping or page range (NAME, NAME[N] or NAME[A:B])", usage: usage)
        let pages = try mappingPages(name, c)
        guard let open = c.peek, open.isPunct("[") else { return PageRange(name.text) }
        _ = c.next()
        guard let firstToken = c.peek else { throw c.missing("a page index", usage: usage) }
        let first = Int(try c.number("a page index", usage: usage, maximum: UInt64(ScenarioLimits.pages)))
        guard let after = c.next() else { throw c.missing("]", usage: usage) }
        if after.isPunct("]") {
            guard first < pages else {
                throw c.error(firstToken.column, "\(name.text)[\(first)]: page \(first) is past the end of \(name.text) (\(pages) pages)")
            }
            return PageRange(name.text, .page(first))
        }
        guard after.isPunct(":") else { throw c.error(after.column, "expected : or ] in a page range") }
        guard let endToken = c.peek else { throw c.missing("the end page", usage: usage) }
        let end = Int(try c.number("the end page", usage: usage, maximum: UInt64(ScenarioLimits.pages)))
        guard let close = c.next(), close.isPunct("]") else { throw c.error(c.line.endColumn, "expected ] to end the page range") }
        guard end <= pages else {
            throw c.error(endToken.column, "\(name.text)[\(first):\(end)]: the range ends past the end of \(name.text) (\(pages) pages)")
        }
        guard first < end else { throw c.error(firstToken.column, "\(name.text)[\(first):\(end)]: empty page range") }
        return PageRange(name.text, .span(first, end))
    }

    mutating func parseProt(_ c: inout Cursor, usage: String) throws(ScenarioError) -> Prot {
        guard let token = c.next() else { throw c.missing("the protection", usage: usage) }
        return try protValue(token, c, usage: usage)
    }

    func protValue(_ token: Token, _ c: Cursor, usage: String) throws(ScenarioError) -> Prot {
        let words: [String: Prot] = [
            "none": .none, "r": .r, "w": Prot(read: false, write: true), "x": Prot(read: false, write: false, exec: true),
            "rw": .rw, "rx": Prot(read: true, write: false, exec: true), "wx": Prot(read: false, write: true, exec: true),
            "rwx": Prot(read: true, write: true, exec: true),
        ]
        guard token.kind == .word, let prot = words[token.text] else {
            throw c.error(token.column, "bad protection \"\(token.text)\" (none, or r, w, x in that order: r, rw, rwx, ...)")
        }
        return prot
    }

    /// `zero`, `fill(B)`, `seq`, `seq(N)` or `rand(S)`.
    func parsePattern(_ c: inout Cursor, usage: String) throws(ScenarioError) -> Pattern {
        let word = try c.name("a pattern (zero, fill(B), seq, seq(N), rand(S))", usage: usage)
        func argument(_ maximum: UInt64) throws(ScenarioError) -> UInt64? {
            guard let open = c.peek, open.isPunct("(") else { return nil }
            _ = c.next()
            let value = try c.number("the pattern's argument", usage: usage, maximum: maximum)
            guard let close = c.next(), close.isPunct(")") else { throw c.error(c.line.endColumn, "expected ) after the pattern's argument") }
            return value
        }
        switch word.text {
        case "zero": return .zero
        case "seq": return .seq(UInt32(try argument(UInt64(UInt32.max)) ?? 0))
        case "fill":
            guard let byte = try argument(255) else { throw c.error(word.column, "fill needs its byte: fill(0xNN)") }
            return .fill(UInt8(byte))
        case "rand":
            guard let seed = try argument(.max) else { throw c.error(word.column, "rand needs its seed: rand(N)") }
            return .rand(seed)
        default:
            throw c.error(word.column, "unknown pattern \"\(word.text)\" (zero, fill(B), seq, seq(N), rand(S))")
        }
    }
}
