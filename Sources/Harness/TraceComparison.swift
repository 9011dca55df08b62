import ABI
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Which cases' command traces are comparable at all.
///
/// The one place that says a case is nondeterministic on the real kernel:
/// its trace may legitimately differ between two runs on the same backend,
/// so `compare-traces` reports it as not compared instead of failing.
///
/// Cases that fork were checked and stay deterministic: in anon_write_child
/// and anon_write_child_shared the parent waits for the child before its
/// next device command, and the children of exclusive_cow and
/// hmm_cow_in_device issue no device commands, so a child's lines never
/// interleave with the parent's even though the kernel's child runs
/// concurrently (and the simulator's runs inside wait()).
public enum TracePolicy {
    /// Test names (the last part of fixture.variant.test) and why.
    public static let nondeterministicTests: [String: String] = [
        "anon_teardown": "a thread's munmap races the device READ: any outcome is allowed",
        "benchmark_thp_migration": "THP availability and memory pressure decide how 128-THP buffers migrate",
    ]

    /// The test name of a case name ("hmm.hmm_device_private.anon_read" → "anon_read").
    public static func testName(of caseName: String) -> String {
        caseName.split(separator: ".").last.map(String.init) ?? caseName
    }

    /// Whether two traces of `caseName` must be the same line for line.
    public static func isDeterministic(_ caseName: String) -> Bool {
        nondeterministicTests[testName(of: caseName)] == nil
    }
}

/// `dmirror compare-traces A B`: two directories of `<case>.trace` files, case by case.
///
/// Files are read as streams, line by line, and a comparison stops at the
/// first difference, so a huge or garbage file costs bounded time and memory:
/// a line longer than `maximumLineLength` or one that is not text ends it as
/// "not a trace".
public enum TraceComparison {
    public static let fileExtension = ".trace"
    /// The longest line a trace can have (a snapshot of 1M distinct bytes is ~3 MiB; real ones are short).
    public static let maximumLineLength = 4 << 20

    /// One case's comparison.
    public enum Comparison: Equatable, Sendable {
        case same
        /// The first differing line of each side (1-based line number in its
        /// file, nil text past the end of that file).
        case differs(lineA: Int, textA: String?, lineB: Int, textB: String?)
        /// Only one side has the trace.
        case missing(inA: Bool, inB: Bool)
        case nondeterministic
        case ignored

        /// Whether this comparison makes compare-traces fail.
        public var fails: Bool {
            if case .differs = self { return true }
            return false
        }
    }

    public struct Entry: Equatable, Sendable {
        public var name: String
        public var comparison: Comparison
    }

    /// Why a comparison could not be made: one line each.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadableDirectory(String, Errno)
        case unreadableFile(String, Errno)
        case noTraces(String)
        case notATrace(String, line: Int, why: String)
        /// The two sides' traces digest data differently (their headers' versions differ).
        case mixedVersions(String, Int, String, Int)

        public var description: String {
            switch self {
            case .unreadableDirectory(let path, let error): "\(path): \(error.named)"
            case .unreadableFile(let path, let error): "\(path): \(error.named)"
            case .noTraces(let path): "\(path) has no *\(TraceComparison.fileExtension) files (dmirror run --trace \(path) writes them)"
            case .notATrace(let path, let line, let why): "\(path):\(line): not a command trace (\(why))"
            case .mixedVersions(let a, let va, let b, let vb):
                "\(a) is a v\(va) trace and \(b) a v\(vb) one: their data digests differ "
                    + "(\(TraceDigest(version: va)?.rawValue ?? "unknown") vs \(TraceDigest(version: vb)?.rawValue ?? "unknown")); "
                    + "record one side again with dmirror run --trace-digest \(TraceDigest(version: va)?.rawValue ?? "fnv1a64")"
            }
        }
    }

    /// Compares every case either directory has a trace of, in name order.
    /// `ignoring` holds case names or test names to leave out. A directory with no trace at all is a failure.
    public static func compare(_ a: String, _ b: String, ignoring: Set<String> = []) throws(Failure) -> [Entry] {
        let namesA = try caseNames(in: a)
        let namesB = try caseNames(in: b)
        if namesA.isEmpty { throw .noTraces(a) }
        if namesB.isEmpty { throw .noTraces(b) }
        var entries: [Entry] = []
        for name in namesA.union(namesB).sorted() {
            let comparison: Comparison
            if ignoring.contains(name) || ignoring.contains(TracePolicy.testName(of: name)) {
                comparison = .ignored
            } else if !TracePolicy.isDeterministic(name) {
                comparison = .nondeterministic
            } else if !namesA.contains(name) || !namesB.contains(name) {
                comparison = .missing(inA: namesA.contains(name), inB: namesB.contains(name))
            } else {
                comparison = try compareFiles(CommandTrace.path(directory: a, caseName: name),
                                              CommandTrace.path(directory: b, caseName: name))
            }
            entries.append(Entry(name: name, comparison: comparison))
        }
        return entries
    }

    /// Compares two trace files line by line, skipping `#` comment lines (line numbers stay the file's).
    public static func compareFiles(_ pathA: String, _ pathB: String) throws(Failure) -> Comparison {
        let left = try LineReader(path: pathA)
        let right = try LineReader(path: pathB)
        var checkedVersions = false
        while true {
            let l = try left.nextSignificant()
            let r = try right.nextSignificant()
            if !checkedVersions {
                checkedVersions = true
                if let va = left.version, let vb = right.version, va != vb { throw .mixedVersions(pathA, va, pathB, vb) }
            }
            if l == nil && r == nil { return .same }
            if !sameLine(l?.text, r?.text) {
                return .differs(lineA: l?.number ?? left.lineNumber + 1, textA: l.map { display($0.text) },
                                lineB: r?.number ?? right.lineNumber + 1, textB: r.map { display($0.text) })
            }
        }
    }

    /// Compares two traces' lines held in memory (tests, and the same rules as the files').
    public static func compareLines(_ a: [String], _ b: [String]) -> Comparison {
        func significant(_ lines: [String]) -> [(Int, String)] {
            lines.enumerated().filter { !$0.element.hasPrefix("#") }.map { ($0.offset + 1, $0.element) }
        }
        let left = significant(a)
        let right = significant(b)
        for index in 0..<max(left.count, right.count) {
            let l = index < left.count ? left[index] : nil
            let r = index < right.count ? right[index] : nil
            if !sameLine(l?.1, r?.1) {
                return .differs(lineA: l?.0 ?? a.count + 1, textA: l?.1, lineB: r?.0 ?? b.count + 1, textB: r?.1)
            }
        }
        return .same
    }

    /// Two trace lines agree. A walk count (` walks=N`, appended last) is compared only
    /// when both sides counted walks: a kernel without dmirror's kprobes records none.
    static func sameLine(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b else { return a == b }
        if a == b { return true }
        let (strippedA, countedA) = withoutWalks(a)
        let (strippedB, countedB) = withoutWalks(b)
        return countedA != countedB && strippedA == strippedB
    }

    private static func withoutWalks(_ line: String) -> (String, Bool) {
        guard let space = line.lastIndex(of: " ") else { return (line, false) }
        let last = line[line.index(after: space)...]
        guard last.hasPrefix("walks="), last.count > 6, last.dropFirst(6).allSatisfy(\.isNumber) else { return (line, false) }
        return (String(line[..<space]), true)
    }

    /// A line as a report shows it: at most 200 characters.
    static func display(_ text: String) -> String {
        text.count <= 200 ? text : String(text.prefix(200)) + "..."
    }

    /// The report, one line per case (two more for a difference) and a summary;
    /// the exit status is 0 when every case both sides have is the same, 1 otherwise
    /// (with `failOnMissing`, also 1 when a case is missing on one side).
    public static func report(_ entries: [Entry], nameA: String = "A", nameB: String = "B",
                              failOnMissing: Bool = false) -> (lines: [String], exitCode: Int32) {
        var lines: [String] = []
        var counts = Totals()
        for entry in entries {
            counts.add(entry.comparison)
            switch entry.comparison {
            case .same:
                lines.append("\(entry.name): same")
            case .differs(let lineA, let textA, let lineB, let textB):
                lines.append("\(entry.name): differs")
                lines.append("  \(nameA):\(lineA): \(textA ?? "(end of trace)")")
                lines.append("  \(nameB):\(lineB): \(textB ?? "(end of trace)")")
            case .missing(let inA, _):
                lines.append("\(entry.name): missing in \(inA ? nameB : nameA)")
            case .nondeterministic:
                lines.append("\(entry.name): nondeterministic (not compared)")
            case .ignored:
                lines.append("\(entry.name): ignored")
            }
        }
        lines.append("# \(counts.same) same, \(counts.differs) differ, \(counts.missing) missing, "
                     + "\(counts.nondeterministic) nondeterministic, \(counts.ignored) ignored")
        if counts.disjoint { lines.append("# no case has a trace on both sides: nothing was compared") }
        return (lines, counts.failed(failOnMissing: failOnMissing) ? KSFTExit.fail : KSFTExit.pass)
    }

    /// The comparison as one JSON document: every case with its comparison (and, for a
    /// difference, the first differing line of each side), the counts, and whether it passed.
    public static func json(_ entries: [Entry], a: String, b: String, failOnMissing: Bool = false) -> String {
        let q = JSON.quote
        func side(_ line: Int, _ text: String?) -> String { "{\"line\": \(line), \"text\": \(text.map(q) ?? "null")}" }
        var counts = Totals()
        var rows: [String] = []
        for entry in entries {
            counts.add(entry.comparison)
            var row = "{\"name\": \(q(entry.name)), \"verdict\": "
            switch entry.comparison {
            case .same: row += "\"same\""
            case .differs(let lineA, let textA, let lineB, let textB):
                row += "\"differs\", \"a\": \(side(lineA, textA)), \"b\": \(side(lineB, textB))"
            case .missing(let inA, _): row += "\"missing\", \"missing_in\": \(q(inA ? "b" : "a"))"
            case .nondeterministic: row += "\"nondeterministic\""
            case .ignored: row += "\"ignored\""
            }
            rows.append(row + "}")
        }
        let totals = "\"same\": \(counts.same), \"differs\": \(counts.differs), \"missing\": \(counts.missing), "
            + "\"nondeterministic\": \(counts.nondeterministic), \"ignored\": \(counts.ignored)"
        return "{\n  \"a\": \(q(a)), \"b\": \(q(b)),\n  \"cases\": [\n    " + rows.joined(separator: ",\n    ")
            + "\n  ],\n  \"totals\": {\(totals)},\n  \"passed\": \(!counts.failed(failOnMissing: failOnMissing))\n}"
    }

    struct Totals {
        var same = 0, differs = 0, missing = 0, nondeterministic = 0, ignored = 0

        mutating func add(_ comparison: Comparison) {
            switch comparison {
            case .same: same += 1
            case .differs: differs += 1
            case .missing: missing += 1
            case .nondeterministic: nondeterministic += 1
            case .ignored: ignored += 1
            }
        }

        /// Two sides with no case in common compared nothing: that is a failure, not a pass.
        var disjoint: Bool { same + differs == 0 && missing > 0 }

        func failed(failOnMissing: Bool) -> Bool { differs > 0 || (failOnMissing && missing > 0) || disjoint }
    }

    /// The case names of the `.trace` files in `directory`.
    public static func caseNames(in directory: String) throws(Failure) -> Set<String> {
        let entries: [String]
        do {
            entries = try Sys.directoryEntries(directory)
        } catch {
            throw .unreadableDirectory(directory, error)
        }
        var names: Set<String> = []
        for name in entries where name.hasSuffix(fileExtension) && name.count > fileExtension.count {
            names.insert(String(name.dropLast(fileExtension.count)))
        }
        return names
    }
}

/// Reads a trace file line by line with a fixed buffer. Only a regular file is
/// opened (a FIFO would block), non-blocking, and text that is not a trace's
/// (a NUL or control byte, invalid UTF-8, an overlong line) is refused.
final class LineReader {
    let path: String
    private let fd: FileDescriptor
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private(set) var lineNumber = 0

    init(path: String) throws(TraceComparison.Failure) {
        self.path = path
        do {
            fd = try Sys.open(path, O_RDONLY | O_NONBLOCK)
        } catch {
            throw .unreadableFile(path, error)
        }
        let info: stat
        do {
            info = try Sys.fstat(fd)
        } catch {
            throw .unreadableFile(path, error)
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notATrace(path, line: 0, why: "not a regular file") }
    }

    deinit { try? Sys.close(fd) }

    /// The next line that is not a `#` comment, with its 1-based number; nil at the end.
    func nextSignificant() throws(TraceComparison.Failure) -> (number: Int, text: String)? {
        while let line = try next() {
            if !line.hasPrefix("#") { return (lineNumber, line) }
            if version == nil, lineNumber == 1 { version = CommandTrace.version(ofHeader: line) }
        }
        return nil
    }

    /// The format version the file's header names (known once a significant line was read).
    private(set) var version: Int?

    private func next() throws(TraceComparison.Failure) -> String? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let bytes = buffer[start..<newline]
                start = newline + 1
                lineNumber += 1
                return try validate(bytes)
            }
            if buffer.count - start > TraceComparison.maximumLineLength {
                throw .notATrace(path, line: lineNumber + 1, why: "a line longer than \(TraceComparison.maximumLineLength >> 20) MiB")
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let bytes = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return try validate(bytes)
            }
            try fill()
        }
    }

    private func fill() throws(TraceComparison.Failure) {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { chunk.deallocate() }
        do {
            let n = try Sys.read(fd, into: chunk)
            if n == 0 { atEnd = true } else { buffer += chunk[0..<n] }
        } catch {
            throw .unreadableFile(path, error)
        }
    }

    private func validate(_ bytes: ArraySlice<UInt8>) throws(TraceComparison.Failure) -> String {
        if let bad = bytes.first(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) {
            throw .notATrace(path, line: lineNumber, why: "control byte 0x\(String(bad, radix: 16))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .notATrace(path, line: lineNumber, why: "not UTF-8 text")
        }
        return text
    }
}
