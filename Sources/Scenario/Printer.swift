import ABI
import Harness

/// The canonical text of a scenario: one statement per line, fork blocks
/// indented by two spaces, options in a fixed order, numbers in decimal
/// (request numbers and flag words in hex). Parsing the text gives the same
/// tree back (`ScenarioParser.parse(print(s)) == s`, line numbers aside), and
/// result lines quote statements in this form.
public enum ScenarioPrinter {
    /// The whole scenario as a file (newline-terminated), with an optional comment header.
    public static func print(_ scenario: Scenario, header: [String] = []) -> String {
        var out = ""
        for line in header { out += line.isEmpty ? "#\n" : "# \(line)\n" }
        write(scenario.statements, depth: 0, into: &out)
        return out
    }

    private static func write(_ statements: [Statement], depth: Int, into out: inout String) {
        let indent = String(repeating: "  ", count: depth)
        for statement in statements {
            out += indent + text(statement.operation) + "\n"
            if case .fork(let body) = statement.operation {
                write(body, depth: depth + 1, into: &out)
                out += indent + "}\n"
            }
            for expectation in statement.expectations {
                out += indent + text(expectation) + "\n"
            }
        }
    }

    /// One statement's line (`fork {` for a fork; its body is not included).
    public static func text(_ operation: Operation) -> String {
        switch operation {
        case .open(let file, let unit): "open \(file) \(unit)"
        case .close(let file): "close \(file)"
        case .tempFile(let name, let pages, let fill): "file \(name) \(pages)" + (fill.map { " " + text($0) } ?? "")
        case .mmap(let spec): text(spec)
        case .munmap(let range): "munmap \(text(range))"
        case .mprotect(let range, let prot): "mprotect \(text(range)) \(text(prot))"
        case .madvise(let range, let advice): "madvise \(text(range)) \(advice.rawValue)"
        case .mremap(let spec): text(spec)
        case .load(let range): "load \(text(range))"
        case .store(let range, let pattern): "store \(text(range)) \(text(pattern))"
        case .fork: "fork {"
        case .command(let command, let file, let range): "\(command.rawValue) \(file) \(text(range))"
        case .write(let file, let range, let pattern): "write \(file) \(text(range)) \(text(pattern))"
        case .release(let file, let range): "release \(file)" + (range.map { " " + text($0) } ?? "")
        case .flags(let file, let value):
            value == DmirrorFlags.failAlloc.rawValue ? "flags \(file) fail_alloc" : "flags \(file) \(hex(value))"
        case .ioctl(let raw): text(raw)
        }
    }

    public static func text(_ range: PageRange) -> String {
        switch range.form {
        case .whole: range.mapping
        case .page(let n): "\(range.mapping)[\(n)]"
        case .span(let a, let b): "\(range.mapping)[\(a):\(b)]"
        }
    }

    public static func text(_ pattern: Pattern) -> String {
        switch pattern {
        case .zero: "zero"
        case .fill(let byte): "fill(0x\(Lexer.hex2(byte)))"
        case .seq(let base): base == 0 ? "seq" : "seq(\(base))"
        case .rand(let seed): "rand(\(seed))"
        }
    }

    public static func text(_ prot: Prot) -> String {
        if !prot.read && !prot.write && !prot.exec { return "none" }
        return (prot.read ? "r" : "") + (prot.write ? "w" : "") + (prot.exec ? "x" : "")
    }

    static func text(_ spec: MmapSpec) -> String {
        var out = "mmap \(spec.name) \(spec.pages) "
        switch spec.source {
        case .anon: out += "anon"
        case .hugetlb: out += "hugetlb"
        case .file(let f): out += "file \(f)"
        case .device(let d): out += "dev \(d)"
        }
        if spec.shared { out += " shared" }
        if spec.prot != .rw { out += " prot=\(text(spec.prot))" }
        if spec.offset != 0 { out += " offset=\(spec.offset)" }
        if spec.alignPMD { out += " align=pmd" }
        if spec.populate { out += " populate" }
        if let huge = spec.hugepage { out += huge ? " hugepage" : " nohugepage" }
        return out
    }

    static func text(_ spec: MremapSpec) -> String {
        var out = "mremap \(text(spec.range)) \(spec.newName) \(spec.pages)"
        if spec.mayMove { out += " maymove" }
        if spec.dontUnmap { out += " dontunmap" }
        if let target = spec.target { out += " to=\(text(target))" }
        return out
    }

    static func text(_ raw: RawIoctl) -> String {
        var out = "ioctl \(raw.file) "
        switch raw.request {
        case .command(let command):
            out += ScenarioParser.commandWords.first { $0.value == command }!.key
        case .number(let n): out += hex(n)
        case .encoded(let nr, let size, let dir):
            out += "nr=\(nr)"
            if size != 40 { out += " size=\(size)" }
            if dir != 3 { out += " dir=\(["none", "w", "r", "rw"][Int(dir)])" }
        }
        switch raw.address {
        case .number(0): break
        case .number(let n): out += " addr=\(hex(n))"
        case .page(let page, let plus): out += " addr=\(text(page))" + (plus == 0 ? "" : "+\(plus)")
        }
        if raw.npages != 1 { out += " npages=\(raw.npages)" }
        if raw.nullPointer { out += " ptr=null" }
        return out
    }

    public static func text(_ expectation: Expectation) -> String {
        // snapshot= takes the rest of the line, so it is printed last.
        let ordered = expectation.fields.filter { if case .snapshot = $0 { false } else { true } }
            + expectation.fields.filter { if case .snapshot = $0 { true } else { false } }
        return "expect " + ordered.map(text).joined(separator: " ")
    }

    public static func text(_ field: ExpectField) -> String {
        switch field {
        case .ok: "ok"
        case .skipped: "skipped"
        case .errno(let name): "errno=\(name)"
        case .cpages(let n): "cpages=\(n)"
        case .faults(let n): "faults=\(n)"
        case .data(let pattern): "data=\(text(pattern))"
        case .digest(let d): "data=fnv1a64:\(TraceFormat.hex(d, width: 16))"
        case .snapshot(let runs): "snapshot=\(runs)"
        case .signal(let name): "signal=\(name)"
        case .exit(let code): "exit=\(code)"
        }
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}
