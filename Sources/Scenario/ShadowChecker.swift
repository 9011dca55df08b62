import Harness
import MachineInterface

/// Holds the simulator to the shadow model: every mapped page must read (with
/// `MachineIntrospection.peek`, which faults nothing) exactly what the model
/// says, and a page the model says faults must not be readable. Data a device
/// command or a CPU load returned must be the pages' data too.
struct ShadowChecker {
    let state: RunState
    let process: ProcessState

    var pageSize: Int { state.pageSize }

    /// Most pages one peek reads (64 KiB: under malloc's mmap threshold).
    static let peekPages = 16

    /// Every page of the process.
    func check() -> [String] {
        guard let machine = process.introspection else { return [] }
        var problems: [String] = []
        let vpns = process.shadow.pages.keys.sorted()
        var i = 0
        while i < vpns.count {
            // A run of consecutive pages the model says are readable: one peek. Runs stay short so
            // the peeked bytes come from reused heap memory, not fresh pages the host must zero.
            var j = i
            while j < vpns.count, j - i < Self.peekPages, vpns[j] == vpns[i] + UInt64(j - i),
                  case .data? = process.shadow.expectation(vpns[j]) { j += 1 }
            if j > i, let bytes = machine.peek(vpns[i] * UInt64(pageSize), count: (j - i) * pageSize) {
                bytes.withUnsafeBytes { raw in
                    for k in i..<j {
                        let page = UnsafeRawBufferPointer(rebasing: raw[((k - i) * pageSize)..<((k - i + 1) * pageSize)])
                        if let problem = compare(page, vpns[k], "a load") { problems.append(problem) }
                    }
                }
                i = j
                continue
            }
            // One page at a time: faulting pages, pages of unknown readability, or a run that did not peek.
            let end = max(j, i + 1)
            for k in i..<end { problems += checkPage(vpns[k], machine) }
            i = end
        }
        return problems
    }

    private func checkPage(_ vpn: UInt64, _ machine: any MachineIntrospection) -> [String] {
        guard let expected = process.shadow.expectation(vpn) else { return [] }
        let bytes = machine.peek(vpn * UInt64(pageSize), count: pageSize)
        switch (expected, bytes) {
        case (.fault, nil), (.maybe, nil): return []
        case (.fault, _?):
            return ["\(describe(vpn)): a load would read it, but it must fault (\(why(vpn)))"]
        case (.data, nil):
            return ["\(describe(vpn)): a load would fault, but the page must hold data"]
        case (.data, let bytes?), (.maybe, let bytes?):
            return bytes.withUnsafeBytes { raw in compare(raw, vpn, "a load").map { [$0] } ?? [] }
        }
    }

    private func why(_ vpn: UInt64) -> String {
        guard let page = process.shadow.pages[vpn] else { return "unmapped" }
        if page.readable == false { return "PROT_NONE" }
        return "SIGBUS: no page behind it"
    }

    /// Checks data a load or a device command returned for pages [vpn, vpn + pages).
    func checkData(_ data: UnsafeRawBufferPointer, vpn: UInt64, pages: Int, what: String) -> [String] {
        var problems: [String] = []
        for k in 0..<pages {
            guard process.shadow.content(vpn + UInt64(k)) != nil else { continue }
            let page = UnsafeRawBufferPointer(rebasing: data[(k * pageSize)..<((k + 1) * pageSize)])
            if let problem = compare(page, vpn + UInt64(k), what) { problems.append(problem) }
        }
        return problems
    }

    /// nil when `bytes` is one of the page's possible contents (which is then the one it has).
    private func compare(_ bytes: UnsafeRawBufferPointer, _ vpn: UInt64, _ what: String) -> String? {
        guard let content = process.shadow.content(vpn) else { return nil }
        guard content.isKnown else {
            process.shadow.observe(vpn, .bytes(Array(bytes)))
            return nil
        }
        for data in content.alternatives where matches(bytes, data) {
            if content.alternatives.count > 1 { process.shadow.observe(vpn, data) }
            return nil
        }
        let expected = content.alternatives.map(describe).joined(separator: " or ")
        return "\(describe(vpn)): \(what) read \(TraceFormat.data(bytes)), but the page must hold \(expected) (data lost or misplaced)"
    }

    private func matches(_ bytes: UnsafeRawBufferPointer, _ data: PageData) -> Bool {
        switch data {
        case .zero: return Self.isZero(bytes)
        case .bytes(let b): return b.withUnsafeBytes { Self.equal($0, bytes) }
        case .pattern(.rand, _):
            // A hash per word costs more than the comparison: the page's bytes are made once.
            let expected = state.randPages[data] ?? {
                guard case .pattern(let pattern, let page) = data else { return [] }
                let made = pattern.bytes(pages: page, count: 1, pageSize: pageSize)
                state.randPages[data] = made
                return made
            }()
            return expected.withUnsafeBytes { Self.equal($0, bytes) }
        case .pattern(let pattern, let page): return pattern.matches(page: page, bytes)
        }
    }

    private func describe(_ data: PageData) -> String {
        switch data {
        case .zero: "zeros"
        case .pattern(let p, let page): "\(ScenarioPrinter.text(p)) page \(page)"
        case .bytes(let b): b.withUnsafeBytes { TraceFormat.data($0) }
        }
    }

    /// `a[3]` for the page (the first name, in name order, whose pages cover it), or its address.
    private func describe(_ vpn: UInt64) -> String {
        for name in process.values.keys.sorted() {
            guard case .mapping(let base?, let pages, _)? = process.values[name] else { continue }
            let first = base / UInt64(pageSize)
            if vpn >= first && vpn < first + UInt64(pages) { return "\(name)[\(vpn - first)]" }
        }
        return "page 0x\(String(vpn * UInt64(pageSize), radix: 16))"
    }

    @_optimize(speed)
    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let words = bytes.count / 8
        for w in 0..<words where bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) != 0 { return false }
        for k in (words * 8)..<bytes.count where bytes[k] != 0 { return false }
        return true
    }

    @_optimize(speed)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        let words = a.count / 8
        for w in 0..<words
            where a.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) != b.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) {
            return false
        }
        for k in (words * 8)..<a.count where a[k] != b[k] { return false }
        return true
    }
}
