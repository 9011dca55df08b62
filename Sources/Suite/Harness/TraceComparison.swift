import DmirrorDevice
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
public enum TraceComparison {
    public static let fileExtension = ".trace"

    /// One case's comparison.
    public enum Verdict: Equatable, Sendable {
        case same
        /// The first differing line of each side (1-based line number in its
        /// file, nil text past the end of that file).
        case differs(lineA: Int, textA: String?, lineB: Int, textB: String?)
        /// Only one side has the trace.
        case missing(inA: Bool, inB: Bool)
        case nondeterministic
        case ignored

        /// Whether this verdict makes compare-traces fail.
        public var fails: Bool {
            if case .differs = self { return true }
            return false
        }
    }

    public struct Entry: Equatable, Sendable {
        public var name: String
        public var verdict: Verdict
    }

    public enum Failure: Error, CustomStringConvertible {
        case unreadableDirectory(String, Errno)
        case unreadableFile(String, Errno)
        public var description: String {
            switch self {
            case .unreadableDirectory(let path, let error): "\(path): \(error)"
            case .unreadableFile(let path, let error): "\(path): \(error)"
            }
        }
    }

    /// Compares every case either directory has a trace of, in name order.
    /// `ignoring` holds case names or test names to leave out.
    public static func compare(_ a: String, _ b: String, ignoring: Set<String> = []) throws(Failure) -> [Entry] {
        let namesA = try caseNames(in: a)
        let namesB = try caseNames(in: b)
        var entries: [Entry] = []
        for name in namesA.union(namesB).sorted() {
            let verdict: Verdict
            if ignoring.contains(name) || ignoring.contains(TracePolicy.testName(of: name)) {
                verdict = .ignored
            } else if !TracePolicy.isDeterministic(name) {
                verdict = .nondeterministic
            } else if !namesA.contains(name) || !namesB.contains(name) {
                verdict = .missing(inA: namesA.contains(name), inB: namesB.contains(name))
            } else {
                verdict = compareLines(try lines(of: CommandTrace.path(directory: a, caseName: name)),
                                       try lines(of: CommandTrace.path(directory: b, caseName: name)))
            }
            entries.append(Entry(name: name, verdict: verdict))
        }
        return entries
    }

    /// Compares two traces' lines, skipping `#` comment lines (line numbers stay the file's).
    public static func compareLines(_ a: [String], _ b: [String]) -> Verdict {
        func significant(_ lines: [String]) -> [(Int, String)] {
            lines.enumerated().filter { !$0.element.hasPrefix("#") }.map { ($0.offset + 1, $0.element) }
        }
        let left = significant(a)
        let right = significant(b)
        for index in 0..<max(left.count, right.count) {
            let l = index < left.count ? left[index] : nil
            let r = index < right.count ? right[index] : nil
            if l?.1 != r?.1 {
                return .differs(lineA: l?.0 ?? a.count + 1, textA: l?.1,
                                lineB: r?.0 ?? b.count + 1, textB: r?.1)
            }
        }
        return .same
    }

    /// The report, one line per case (two more for a difference) and a summary;
    /// the exit status is 0 when every case both sides have is the same, 1 otherwise
    /// (with `failOnMissing`, also 1 when a case is missing on one side).
    public static func report(_ entries: [Entry], nameA: String = "A", nameB: String = "B",
                              failOnMissing: Bool = false) -> (lines: [String], exitCode: Int32) {
        var lines: [String] = []
        var counts = (same: 0, differs: 0, missing: 0, nondeterministic: 0, ignored: 0)
        for entry in entries {
            switch entry.verdict {
            case .same:
                counts.same += 1
                lines.append("\(entry.name): same")
            case .differs(let lineA, let textA, let lineB, let textB):
                counts.differs += 1
                lines.append("\(entry.name): differs")
                lines.append("  \(nameA):\(lineA): \(textA ?? "(end of trace)")")
                lines.append("  \(nameB):\(lineB): \(textB ?? "(end of trace)")")
            case .missing(let inA, _):
                counts.missing += 1
                lines.append("\(entry.name): missing in \(inA ? nameB : nameA)")
            case .nondeterministic:
                counts.nondeterministic += 1
                lines.append("\(entry.name): nondeterministic (not compared)")
            case .ignored:
                counts.ignored += 1
                lines.append("\(entry.name): ignored")
            }
        }
        lines.append("# \(counts.same) same, \(counts.differs) differ, \(counts.missing) missing, "
                     + "\(counts.nondeterministic) nondeterministic, \(counts.ignored) ignored")
        let failed = counts.differs > 0 || (failOnMissing && counts.missing > 0)
        return (lines, failed ? 1 : 0)
    }

    /// The comparison as one JSON document: every case with its verdict (and, for a
    /// difference, the first differing line of each side), the counts, and whether it passed.
    public static func json(_ entries: [Entry], a: String, b: String, exitCode: Int32) -> String {
        let q = JSONReporter.quote
        func side(_ line: Int, _ text: String?) -> String {
            "{\"line\": \(line), \"text\": \(text.map(q) ?? "null")}"
        }
        var counts: [String: Int] = ["same": 0, "differs": 0, "missing": 0, "nondeterministic": 0, "ignored": 0]
        var rows: [String] = []
        for entry in entries {
            var row = "{\"name\": \(q(entry.name)), \"verdict\": "
            switch entry.verdict {
            case .same: row += "\"same\""; counts["same"]! += 1
            case .differs(let lineA, let textA, let lineB, let textB):
                row += "\"differs\", \"a\": \(side(lineA, textA)), \"b\": \(side(lineB, textB))"
                counts["differs"]! += 1
            case .missing(let inA, _):
                row += "\"missing\", \"missing_in\": \(q(inA ? "b" : "a"))"
                counts["missing"]! += 1
            case .nondeterministic: row += "\"nondeterministic\""; counts["nondeterministic"]! += 1
            case .ignored: row += "\"ignored\""; counts["ignored"]! += 1
            }
            rows.append(row + "}")
        }
        let totals = ["same", "differs", "missing", "nondeterministic", "ignored"]
            .map { "\(q($0)): \(counts[$0]!)" }.joined(separator: ", ")
        return "{\n  \"a\": \(q(a)), \"b\": \(q(b)),\n  \"cases\": [\n    "
            + rows.joined(separator: ",\n    ")
            + "\n  ],\n  \"totals\": {\(totals)},\n  \"passed\": \(exitCode == 0)\n}"
    }

    /// The case names of the `.trace` files in `directory`.
    public static func caseNames(in directory: String) throws(Failure) -> Set<String> {
        guard let dir = opendir(directory) else { throw .unreadableDirectory(directory, Errno.current) }
        defer { closedir(dir) }
        var names: Set<String> = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(fileExtension), name.count > fileExtension.count {
                names.insert(String(name.dropLast(fileExtension.count)))
            }
        }
        return names
    }

    /// A file's lines (without the final newline's empty line).
    public static func lines(of path: String) throws(Failure) -> [String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadableFile(path, Errno.current) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { bytes += chunk[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw .unreadableFile(path, Errno.current) }
            break
        }
        var lines = String(decoding: bytes, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}
