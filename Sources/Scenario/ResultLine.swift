import ABI
import Harness

/// What one operation did, in the fields both backends must agree on: no
/// addresses, no pids. Printed as the right-hand side of a result line.
public struct OperationResult: Hashable, Sendable {
    public enum Status: Hashable, Sendable {
        case ok
        case errno(Errno)
        /// A CPU access ended the process (or, after `}`, the child) with this signal.
        case signal(Signal)
        /// After `}`: the child's exit status.
        case exit(Int32)
        /// Not run: the mapping or file it names was never created.
        case skipped(String)
        /// The active ABI generation has no such command.
        case unsupported(String)
        /// The scenario process ended (a crash of dmirror, a timeout) during this operation.
        case ended(String)
    }

    public var status: Status
    public var cpages: UInt64?
    public var faults: UInt64?
    /// FNV-1a 64 of the data read.
    public var digest: UInt64?
    /// SNAPSHOT's bytes, run-length encoded.
    public var snapshot: String?

    public init(_ status: Status, cpages: UInt64? = nil, faults: UInt64? = nil, digest: UInt64? = nil, snapshot: String? = nil) {
        self.status = status
        self.cpages = cpages
        self.faults = faults
        self.digest = digest
        self.snapshot = snapshot
    }

    public static let ok = OperationResult(.ok)

    /// `ok cpages=8 faults=1 data=fnv1a64:...`, `errno=EINVAL`, `signal=SIGSEGV`, ...
    public var text: String {
        switch status {
        case .ok:
            var out = "ok"
            if let cpages { out += " cpages=\(cpages)" }
            if let faults { out += " faults=\(faults)" }
            if let digest { out += " data=fnv1a64:\(TraceFormat.hex(digest, width: 16))" }
            if let snapshot { out += " snapshot=\(snapshot)" }
            return out
        case .errno(let e): return "errno=\(TraceFormat.errno(e))"
        case .signal(let s): return "signal=\(s)"
        case .exit(let code): return "exit=\(code)"
        case .skipped(let why): return "skipped (\(why))"
        case .unsupported(let why): return "unsupported (\(why))"
        case .ended(let why): return "ended (\(why))"
        }
    }

    /// nil when every field of `expectation` holds; else what did not, and what it was.
    /// `dataDigest(pattern)` is the digest the pattern has over the pages the result read.
    func mismatch(_ expectation: Expectation, dataDigest: (Pattern) -> UInt64?) -> String? {
        var wrong: [String] = []
        for field in expectation.fields {
            let holds: Bool
            switch field {
            case .ok: holds = status == .ok
            case .skipped: if case .skipped = status { holds = true } else { holds = false }
            case .errno(let name): if case .errno(let e) = status { holds = TraceFormat.errno(e) == name } else { holds = false }
            case .signal(let name): if case .signal(let s) = status { holds = s.description == name } else { holds = false }
            case .exit(let code): holds = status == .exit(code)
            case .cpages(let n): holds = cpages == n
            case .faults(let n): holds = faults == n
            case .digest(let d): holds = digest == d
            case .data(let pattern): holds = digest != nil && digest == dataDigest(pattern)
            case .snapshot(let runs): holds = snapshot == runs
            }
            if !holds { wrong.append(ScenarioPrinter.text(field)) }
        }
        return wrong.isEmpty ? nil : "mismatch: \(wrong.joined(separator: " ")) (got \(text))"
    }
}

/// The lines a scenario prints. Operation lines are what two backends compare;
/// `#` lines are comments and `!` lines (invariant violations, simulator only)
/// are not compared. A `?` line announces a CPU access that may end the process;
/// `ScenarioOutput` resolves it.
public enum ResultLine {
    /// Two spaces per fork depth.
    static func indent(_ depth: Int) -> String { String(repeating: "  ", count: depth) }

    /// `N: <statement> => <result>`.
    public static func operation(_ statement: Statement, _ result: OperationResult, depth: Int) -> String {
        "\(indent(depth))\(statement.line): \(ScenarioPrinter.text(statement.operation)) => \(result.text)"
    }

    /// `? N: <statement>`, written before a CPU access.
    static func pending(_ statement: Statement, depth: Int) -> String {
        "? \(indent(depth))\(statement.line): \(ScenarioPrinter.text(statement.operation))"
    }

    /// `N: fork {`.
    static func forkOpened(_ statement: Statement, depth: Int) -> String {
        "\(indent(depth))\(statement.line): fork {"
    }

    /// `M: } => exit=0`.
    static func forkClosed(_ statement: Statement, _ result: OperationResult, depth: Int) -> String {
        "\(indent(depth))\(statement.endLine): } => \(result.text)"
    }

    /// `N: expect ... => ok` or `=> mismatch: ... (got ...)`.
    static func expectation(_ expectation: Expectation, mismatch: String?, depth: Int) -> String {
        "\(indent(depth))\(expectation.line): \(ScenarioPrinter.text(expectation)) => \(mismatch ?? "ok")"
    }

    /// `! N: invariant: ...`.
    static func violation(line: Int, _ text: String, depth: Int) -> String {
        "! \(indent(depth))\(line): invariant: \(text)"
    }
}
