import Harness
import Testing
@testable import Scenario

/// The generator behind `dmirror fuzz` and the shrinker.
@Suite("Scenario generator and shrinker")
struct ScenarioFuzzTests {
    static func text(seed: UInt64, count: Int, length: Int = 20) -> String {
        let generator = ScenarioGenerator(length: length)
        return (0..<count).map { ScenarioPrinter.print(generator.scenario(seed: seed, index: $0)) }.joined()
    }

    @Test("the same seed gives the same scenarios, byte for byte; another seed others")
    func deterministic() {
        let a = Self.text(seed: 42, count: 40)
        #expect(a == Self.text(seed: 42, count: 40))
        #expect(a != Self.text(seed: 43, count: 40))
        // Scenario i does not depend on the others: --first i --count 1 makes it again.
        let generator = ScenarioGenerator(length: 20)
        #expect(ScenarioPrinter.print(generator.scenario(seed: 42, index: 17))
                == ScenarioPrinter.print(ScenarioGenerator(length: 20).scenario(seed: 42, index: 17)))
        // Pinned, so a run's scenarios can be made again elsewhere (the lab replays them by seed).
        // A deliberate change of the generator changes this digest; update it with the change.
        let digest = Array(Self.text(seed: 1, count: 20).utf8).withUnsafeBytes { TraceFormat.data($0) }
        #expect(digest == ScenarioFuzzTests.pinnedDigest, "generator output changed: \(digest)")
    }

    static let pinnedDigest = "fnv1a64:02e392c5499051a4"

    @Test("every generated scenario is valid, and the weights reach the interesting states")
    func validAndCovering() throws {
        let generator = ScenarioGenerator(length: 24)
        var seen: Set<String> = []
        for index in 0..<400 {
            let s = try generator.numbered(seed: 9, index: index)
            Self.facts(s.statements, into: &seen, privateAndCoherent: s)
        }
        let wanted = ["mmap.thp", "munmap.partial-thp", "private+coherent", "fail_alloc→migrate", "exclusive",
                      "check_exclusive", "release", "fork-after-migrate", "prot-none", "mremap-after-migrate",
                      "madvise.dontneed", "madvise.free", "madvise.collapse", "madvise.hugepage", "mmap.file",
                      "mmap.shared", "mmap.hugetlb", "mmap.dev", "read_unlocked", "ioctl", "write", "snapshot",
                      "migrate_to_sys", "close", "mmap.hugetlb-private", "mmap.hugetlb-shared", "hugetlb+fork",
                      "munmap.partial-hugetlb", "madvise.dontneed-hugetlb", "madvise.dontneed-dev", "exclusive-after-coherent",
                      "mremap.to-shrinks", "mremap.hugetlb", "prot-write-only", "ioctl.huge-npages", "thp-left-empty"]
        for fact in wanted { #expect(seen.contains(fact), "no generated scenario has \(fact)") }
    }

    static func facts(_ statements: [Statement], into seen: inout Set<String>, privateAndCoherent s: Scenario) {
        var migrated = false, failAlloc = false, coherentMigrated = false
        var units: [String: Int] = [:]
        var kinds: [String: String] = [:]
        var thpFilled: Set<String> = []
        var sizes: [String: Int] = [:]
        for st in statements {
            switch st.operation {
            case .open(let file, let unit): units[file] = unit
            case .mmap(let spec):
                sizes[spec.name] = spec.pages
                if spec.alignPMD { seen.insert("mmap.thp") }
                switch spec.source {
                case .file: seen.insert("mmap.file")
                case .hugetlb:
                    seen.insert("mmap.hugetlb")
                    seen.insert(spec.shared ? "mmap.hugetlb-shared" : "mmap.hugetlb-private")
                    kinds[spec.name] = "hugetlb"
                case .device:
                    seen.insert("mmap.dev")
                    kinds[spec.name] = "dev"
                case .anon:
                    if spec.shared { seen.insert("mmap.shared") }
                    if spec.alignPMD { kinds[spec.name] = "thp" }
                }
                if spec.prot == Prot(read: false, write: true) { seen.insert("prot-write-only") }
            case .store(let r, _): thpFilled.insert(r.mapping)
            case .munmap(let r):
                if case .span(let a, let b) = r.form, (b - a) % 512 != 0 || a % 512 != 0 {
                    seen.insert(kinds[r.mapping] == "hugetlb" ? "munmap.partial-hugetlb" : "munmap.partial-thp")
                }
                if case .page = r.form {
                    seen.insert(kinds[r.mapping] == "hugetlb" ? "munmap.partial-hugetlb" : "munmap.partial-thp")
                }
            case .mprotect(_, let p):
                if p == .none { seen.insert("prot-none") }
                if p == Prot(read: false, write: true) { seen.insert("prot-write-only") }
            case .madvise(let r, let a):
                seen.insert("madvise.\(a.rawValue)")
                if a == .dontneed, let kind = kinds[r.mapping], kind != "thp" { seen.insert("madvise.dontneed-\(kind)") }
            case .mremap(let spec):
                if migrated { seen.insert("mremap-after-migrate") }
                if kinds[spec.range.mapping] == "hugetlb" { seen.insert("mremap.hugetlb") }
                if spec.target != nil, let size = sizes[spec.range.mapping],
                   spec.pages < spec.range.resolved(mappingPages: size).count {
                    seen.insert("mremap.to-shrinks")
                }
                if let kind = kinds[spec.range.mapping] { kinds[spec.newName] = kind }
                sizes[spec.newName] = spec.pages
            case .fork(let body):
                if migrated { seen.insert("fork-after-migrate") }
                if kinds.values.contains("hugetlb") { seen.insert("hugetlb+fork") }
                facts(body, into: &seen, privateAndCoherent: s)
            case .command(let c, let file, let range):
                seen.insert(c.rawValue)
                if c == .migrateToDevice {
                    migrated = true
                    if failAlloc { seen.insert("fail_alloc→migrate") }
                    if let unit = units[file], unit >= 2 { coherentMigrated = true }
                }
                if c == .exclusive && coherentMigrated { seen.insert("exclusive-after-coherent") }
                if kinds[range.mapping] == "thp" && !thpFilled.contains(range.mapping) { seen.insert("thp-left-empty") }
            case .flags: failAlloc = true
            case .release: seen.insert("release")
            case .write: seen.insert("write")
            case .ioctl(let raw):
                seen.insert("ioctl")
                if raw.npages >= 1 << 19 { seen.insert("ioctl.huge-npages") }
            case .close: seen.insert("close")
            default: break
            }
        }
        let allUnits = Set(units.values)
        if allUnits.contains(where: { $0 < 2 }) && allUnits.contains(where: { $0 >= 2 }) { seen.insert("private+coherent") }
    }

    /// A planted failure: FAIL_ALLOC on a file and, later, a migration through the same file.
    static func planted(_ s: Scenario) -> Bool {
        var armed: Set<String> = []
        for st in s.statements {
            switch st.operation {
            case .flags(let f, _): armed.insert(f)
            case .command(.migrateToDevice, let f, _) where armed.contains(f): return true
            default: break
            }
        }
        return false
    }

    @Test("a planted failure shrinks to its minimum: open, mmap of one page, flags, migrate")
    func shrinksToMinimum() throws {
        let generator = ScenarioGenerator(length: 30)
        let failing = try (0..<500).lazy.map { try generator.numbered(seed: 3, index: $0) }.first(where: Self.planted)
        let original = try #require(failing)
        var runs = 0
        let shrunk = ScenarioShrinker(maxAttempts: 5000, batchSize: 3).shrink(original) { batch in
            runs += batch.count
            return batch.map(Self.planted)
        }
        let text = ScenarioPrinter.print(shrunk.scenario)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(original.statements.count) statements shrank to:\n\(text)")
        #expect(lines.first?.hasPrefix("open ") == true && lines.first?.hasSuffix(" 0") == true, "\(text)")
        #expect(lines.contains { $0.hasPrefix("mmap ") && $0.hasSuffix(" 1 anon") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("flags ") && $0.hasSuffix(" fail_alloc") }, "\(text)")
        #expect(lines.last?.hasPrefix("migrate_to_dev ") == true, "\(text)")
        #expect(shrunk.attempts == runs && runs <= 5000)
        // 1-minimal: without any one statement it is no longer a failing scenario.
        for k in shrunk.scenario.statements.indices {
            var fewer = shrunk.scenario
            fewer.statements.remove(at: k)
            if let valid = ScenarioShrinker.renumbered(fewer) { #expect(!Self.planted(valid), "\(k) was not needed") }
        }
    }

    @Test("the shrinker keeps a fork block's body when the failure is inside it")
    func shrinksInsideFork() throws {
        let s = try ScenarioParser.parse("""
            open d 0
            mmap a 8 anon
            store a seq
            fork {
              load a
              store a[1:3] fill(0x5)
              flags d fail_alloc
              migrate_to_dev d a[2:6]
            }
            load a
            """, file: "f.scn")
        func fails(_ s: Scenario) -> Bool {
            s.statements.contains { st in
                if case .fork(let body) = st.operation { return Self.planted(Scenario(name: "", statements: body)) }
                return false
            }
        }
        let shrunk = ScenarioShrinker().shrink(s) { $0.map(fails) }
        #expect(ScenarioPrinter.print(shrunk.scenario) == "open d 0\nmmap a 1 anon\nfork {\n  flags d fail_alloc\n  migrate_to_dev d a[0]\n}\n")
    }
}
