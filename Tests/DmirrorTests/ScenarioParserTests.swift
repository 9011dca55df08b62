import PropertyBased
import Testing
@testable import Scenario

/// The scenario language: every kind of malformed line is one error at its
/// file:line:column, and the canonical printer's text parses back to the same tree.
@Suite("Scenario parser and printer")
struct ScenarioParserTests {
    /// (scenario text, the error's "file:line:column: " prefix, a piece of its message).
    static let malformed: [(String, String, String)] = [
        ("frobnicate a\n", "t.scn:1:1: ", "unknown operation \"frobnicate\""),
        ("mmap a 8 anon\nload\n", "t.scn:2:5: ", "missing a mapping"),
        ("mmap a 8 anon\nload a a\n", "t.scn:2:8: ", "unexpected \"a\""),
        ("open d\n", "t.scn:1:7: ", "missing the device unit"),
        ("mmap a 12x anon\n", "t.scn:1:8: ", "bad number \"12x\""),
        ("mmap a 0x anon\n", "t.scn:1:8: ", "bad number"),
        ("mmap a 007 anon\n", "t.scn:1:8: ", "bad number"),
        ("mmap a 70000 anon\n", "t.scn:1:8: ", "too large"),
        ("mmap a 0 anon\n", "t.scn:1:8: ", "at least 1"),
        ("mmap a 8 anon\nload b\n", "t.scn:2:6: ", "unknown mapping b"),
        ("mmap a 8 anon\nload a[0:9]\n", "t.scn:2:10: ", "ends past the end of a (8 pages)"),
        ("mmap a 8 anon\nstore a[8] seq\n", "t.scn:2:9: ", "page 8 is past the end of a"),
        ("mmap a 8 anon\nload a[3:3]\n", "t.scn:2:8: ", "empty page range"),
        ("mmap a 8 anon\nread d a\n", "t.scn:2:6: ", "unknown device file d"),
        ("open d 0\nclose d\nread d x\n", "t.scn:3:6: ", "was closed at line 2"),
        ("open d 0\nopen d 1\n", "t.scn:2:6: ", "already open"),
        ("open d 0\nmmap d 1 anon\n", "t.scn:2:6: ", "already a device file"),
        ("mmap a 1 anon\nmprotect a rwz\n", "t.scn:2:12: ", "bad protection"),
        ("mmap a 1 anon\nmadvise a sleep\n", "t.scn:2:11: ", "unknown advice"),
        ("mmap a 1 anon\nstore a stripes\n", "t.scn:2:9: ", "unknown pattern"),
        ("mmap a 1 anon turbo\n", "t.scn:1:15: ", "unknown mmap option"),
        ("mmap a 1 file f\n", "t.scn:1:15: ", "unknown file f"),
        ("expect ok\n", "t.scn:1:1: ", "expect with no operation"),
        ("mmap a 1 anon\nexpect cpages=x\n", "t.scn:2:15: ", "a number"),
        ("mmap a 1 anon\nexpect snapshot=zz\n", "t.scn:2:17: ", "run-length"),
        ("fork {\nmmap a 1 anon\n", "t.scn:1:1: ", "never closed"),
        ("}\n", "t.scn:1:1: ", "} without a fork"),
        ("open d 0\nioctl d\n", "t.scn:2:8: ", "missing the request"),
        ("open d 0\nioctl d bogus\n", "t.scn:2:9: ", "unknown request"),
        ("mmap a 1 anon\nload a @\n", "t.scn:2:8: ", "unexpected character \"@\""),
        ("mmap a 1 anon\nload a \u{e9}\n", "t.scn:2:8: ", "unexpected character \"\u{e9}\""),
        ("", "t.scn:1:1: ", "empty scenario"),
        ("# only a comment\n\n", "t.scn:1:1: ", "empty scenario"),
    ]

    @Test("each malformed line is one error naming file:line:column", arguments: 0..<malformed.count)
    func malformedLine(_ index: Int) {
        let (text, prefix, message) = Self.malformed[index]
        do {
            let parsed = try ScenarioParser.parse(text, file: "t.scn")
            Issue.record("parsed \(text.debugDescription) as \(parsed.statements.count) statement(s)")
        } catch {
            #expect(error.description.hasPrefix(prefix), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test("binary data and over-long lines are refused where they start")
    func binaryAndLongLines() {
        func error(_ bytes: [UInt8]) -> ScenarioError? {
            var parser = ScenarioParser(file: "b.scn")
            do {
                for line in bytes.split(separator: 10, omittingEmptySubsequences: false) { try parser.feed(line: line) }
                _ = try parser.finish()
                return nil
            } catch {
                return error
            }
        }
        #expect(error(Array("mmap a 1 anon\nlo\u{0}d a\n".utf8))?.description.hasPrefix("b.scn:2:3: binary data (byte 0x00)") == true)
        #expect(error([0x6d, 0x6d, 0xff, 0xfe])?.description.hasPrefix("b.scn:1:3: binary data (not UTF-8)") == true)
        #expect(error([0xc3])?.description.hasPrefix("b.scn:1:1: binary data (not UTF-8)") == true)
        let long = String(repeating: "#", count: ScenarioLimits.lineBytes + 1)
        let tooLong = Result { try ScenarioParser.parse("mmap a 1 anon\n" + long + "\n", file: "l.scn") }
        if case .failure(let e as ScenarioError) = tooLong {
            #expect(e.description.hasPrefix("l.scn:2:4097: line longer than 4096 bytes"))
        } else {
            Issue.record("a line of \(long.count) bytes parsed")
        }
    }

    @Test("a CRLF file and comments parse; line numbers are the file's")
    func crlfAndComments() throws {
        let s = try ScenarioParser.parse("# c\r\nmmap a 2 anon   # the mapping\r\n\r\nstore a[1] seq(3)\r\nexpect ok\r\n", file: "c.scn")
        #expect(s.statements.map(\.line) == [2, 4])
        #expect(s.statements[1].expectations.first?.line == 5)
        #expect(s.statements[1].operation == .store(PageRange("a", .page(1)), .seq(3)))
    }

    @Test("every statement form prints canonically and parses back")
    func everyForm() throws {
        let text = """
            open d 3
            file f 4 rand(7)
            mmap a 1024 anon shared prot=r align=pmd populate hugepage
            mmap b 4 file f prot=wx offset=1
            mmap h 512 hugetlb
            mmap m 2 dev d shared nohugepage
            munmap a[3]
            mprotect a[0:2] none
            madvise a collapse
            mremap a[0:512] c 1024 maymove dontunmap to=b[1]
            load c
            store c[1:3] fill(0x7f)
            fork {
              read d c
              expect ok cpages=1024 faults=1 data=seq snapshot=22x4 ff
              write d c[0] zero
              fork {
                exclusive d c[2]
              }
              expect exit=0
            }
            expect signal=SIGSEGV
            migrate_to_dev d c
            migrate_to_sys d c
            snapshot d c[0:4]
            check_exclusive d c
            read_unlocked d c
            release d
            release d c[0]
            flags d fail_alloc
            flags d 0x6
            ioctl d 0xc0284800 addr=c[1]+5 npages=3 ptr=null
            ioctl d nr=9 size=0 dir=r addr=0x1000
            ioctl d snapshot npages=0
            expect errno=EINVAL
            expect skipped
            expect data=fnv1a64:00000000000000ff
            close d

            """
        let parsed = try ScenarioParser.parse(text, file: "all.scn")
        let printed = ScenarioPrinter.print(parsed)
        let again = try ScenarioParser.parse(printed, file: "all.scn")
        #expect(ScenarioPrinter.print(again) == printed)
        #expect(Self.withoutLines(again) == Self.withoutLines(parsed))
        // The canonical text of this one is the input (it is written canonically), line for line.
        #expect(printed == text.split(separator: "\n").filter { !$0.isEmpty }.joined(separator: "\n") + "\n")
    }

    @Test("generated scenarios survive print → parse → print (property, shrinking the seed)")
    func generatedRoundTrip() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            let generator = ScenarioGenerator(length: 30)
            let made = generator.scenario(seed: UInt64(seed), index: seed % 7)
            let printed = ScenarioPrinter.print(made)
            let parsed = try ScenarioParser.parse(printed, file: made.name)
            #expect(ScenarioPrinter.print(parsed) == printed)
            #expect(Self.withoutLines(parsed) == Self.withoutLines(made))
        }
    }

    @Test("random bytes never crash the parser: they parse or fail at a real line and column (property)")
    func randomBytes() async {
        let byte = Gen<UInt8>.uint8(in: 0...255)
        // Mostly the language's own bytes (so the parser gets past the first token), some any byte.
        let language = Gen<UInt8?>.element(of: Array("mmap a 1 anon\nload a[0]\n[]:=(){}+, 0x1 seq fork\n#\u{7f}".utf8))
        let input = zip(byte, language, Gen.bool(0.8)).map { (t: (UInt8, UInt8?, Bool)) -> UInt8 in
            t.2 ? (t.1 ?? t.0) : t.0
        }.array(of: 0...200)
        await propertyCheck(count: 200, input: input) { bytes in
            var parser = ScenarioParser(file: "r.scn")
            let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
            do throws(ScenarioError) {
                for line in lines where line.count <= ScenarioLimits.lineBytes { try parser.feed(line: line) }
                _ = try parser.finish()
            } catch {
                #expect(error.line >= 1 && error.line <= max(lines.count, 1), "\(error)")
                #expect(error.column >= 1 && error.column <= ScenarioLimits.lineBytes + 1, "\(error)")
            }
        }
    }

    /// The tree without line numbers (what the printer does not carry).
    static func withoutLines(_ s: Scenario) -> [Statement] {
        func strip(_ statements: [Statement]) -> [Statement] {
            statements.map { st in
                var op = st.operation
                if case .fork(let body) = op { op = .fork(strip(body)) }
                return Statement(op, expectations: st.expectations.map { Expectation($0.fields) })
            }
        }
        return strip(s.statements)
    }
}
