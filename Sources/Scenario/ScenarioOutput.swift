import ABI

/// How a scenario's process ended, as the harness saw it.
public enum ScenarioEnding: Hashable, Sendable {
    /// It ran to its end (or stopped at a violation) and exited.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Signal)
    /// The harness killed it at its timeout.
    case timeout
}

/// A scenario's report: its result lines, whether it passed, and why not.
public struct ScenarioReport: Hashable, Sendable {
    /// Operation and expect lines (compared between backends), `!` violation lines, `#` notes.
    public var lines: [String]
    public var passed: Bool
    /// Why it failed (empty when it passed).
    public var reasons: [String]
    /// Invariant violations found (simulator only).
    public var violations: Int
    /// The first violation's text without numbers: what a shrunk scenario must still show.
    public var signature: String?

    public init(lines: [String], passed: Bool, reasons: [String], violations: Int, signature: String?) {
        self.lines = lines
        self.passed = passed
        self.reasons = reasons
        self.violations = violations
        self.signature = signature
    }

    /// The lines two backends must agree on: operation and expect lines.
    public var comparableLines: [String] { lines.filter { !$0.hasPrefix("#") && !$0.hasPrefix("!") } }
}

/// Turns what a scenario process wrote into its report: a `?` line that was
/// not completed (the CPU access ended the process or the child) becomes the
/// access's result line, its `expect` lines are checked against it, and the
/// verdict is decided from the lines (they cover forked children too).
public enum ScenarioOutput {
    public static func report(output: String, scenario: Scenario, ending: ScenarioEnding) -> ScenarioReport {
        let statements = index(scenario.statements)
        var lines: [String] = []
        var pending: (text: String, depth: Int, line: Int)?
        var reasons: [String] = []
        var seenExpectations: Set<Int> = []

        func resolvePending(_ signal: String) {
            guard let p = pending else { return }
            pending = nil
            lines.append("\(p.text) => signal=\(signal)")
            guard let statement = statements[p.line] else { return }
            let result = OperationResult(.signal(Signal(named: signal)))
            for expectation in statement.expectations {
                let mismatch = result.mismatch(expectation) { _ in nil }
                seenExpectations.insert(expectation.line)
                lines.append(ResultLine.expectation(expectation, mismatch: mismatch, depth: p.depth))
            }
        }

        for raw in output.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("? ") {
                let text = String(line.dropFirst(2))
                pending = (text, depth(text), number(text) ?? 0)
                continue
            }
            if line.hasPrefix("! ") {
                lines.append(line)
                continue
            }
            guard let lineNumber = number(line) else {
                // Not a result line: a crash report or the harness's diagnostic.
                lines.append("# " + line)
                continue
            }
            if let p = pending {
                if line.hasPrefix(p.text + " => ") {
                    pending = nil
                } else if depth(line) < p.depth, let range = line.firstRange(of: "} => signal=") {
                    // The child died in its access; the parent's `}` line says of what.
                    resolvePending(String(line[range.upperBound...]))
                } else {
                    resolvePending("?")
                }
            }
            if line.contains(": expect ") { seenExpectations.insert(lineNumber) }
            if line.contains(": expect ") && line.contains(" => mismatch") {
                reasons.append("line \(lineNumber): expectation failed")
            }
            lines.append(line)
        }
        switch ending {
        case .exited(let code):
            if pending != nil { resolvePending("?") }
            if code != 0 { reasons.append("the scenario process exited with status \(code)") }
        case .signaled(let signal):
            if pending != nil && (signal == .segv || signal == .bus) {
                resolvePending(signal.description)
            } else {
                let at = pending.map { " during line \($0.line)" } ?? ""
                pending = nil
                lines.append("# ended: killed by \(signal)\(at), not by a CPU access (a crash of dmirror or of the simulator)")
                reasons.append("crashed: \(signal)\(at)")
            }
        case .timeout:
            let at = pending.map { " during line \($0.line)" } ?? ""
            lines.append("# ended: timeout\(at)")
            reasons.append("timeout\(at)")
        }
        let violationLines = lines.filter { $0.hasPrefix("! ") }
        for l in violationLines.prefix(3) { reasons.append(String(l.dropFirst(2)).trimmingSpaces()) }
        if violationLines.count > 3 { reasons.append("\(violationLines.count - 3) more violation line(s)") }
        let violations = violationLines.count
        let lastSeen = lines.compactMap { number($0) }.max() ?? 0
        let unreached = allExpectations(scenario.statements).filter { !seenExpectations.contains($0) }
        if !unreached.isEmpty && reasons.isEmpty {
            reasons.append("\(unreached.count) expectation(s) not reached (the scenario ended at line \(lastSeen))")
        }
        let signature = lines.first { $0.hasPrefix("! ") }.map(signatureOf)
            ?? reasons.first { $0.hasPrefix("crashed") || $0.hasPrefix("timeout") }
        return ScenarioReport(lines: lines, passed: reasons.isEmpty, reasons: reasons, violations: violations,
                              signature: signature)
    }

    /// A violation's words without its numbers, addresses and page names' indices.
    static func signatureOf(_ line: String) -> String {
        var text = line
        if let colon = text.firstRange(of: "invariant: ") { text = String(text[colon.upperBound...]) }
        var out = ""
        var skipping = false
        for ch in text {
            if ch.isNumber || (skipping && ch.isHexDigit) {
                if !skipping { out.append("#") }
                skipping = true
            } else {
                skipping = false
                out.append(ch)
            }
        }
        return out
    }

    /// Statements by line number (fork bodies included).
    static func index(_ statements: [Statement]) -> [Int: Statement] {
        var out: [Int: Statement] = [:]
        for s in statements {
            out[s.line] = s
            if case .fork(let body) = s.operation { out.merge(index(body)) { a, _ in a } }
        }
        return out
    }

    static func allExpectations(_ statements: [Statement]) -> [Int] {
        statements.flatMap { s -> [Int] in
            var lines = s.expectations.map(\.line)
            if case .fork(let body) = s.operation { lines += allExpectations(body) }
            return lines
        }
    }

    /// The source line a result line starts with (after its indentation).
    static func number(_ line: String) -> Int? {
        let trimmed = line.drop { $0 == " " }
        let digits = trimmed.prefix { $0.isNumber }
        guard !digits.isEmpty, trimmed.dropFirst(digits.count).hasPrefix(":") else { return nil }
        return Int(digits)
    }

    static func depth(_ line: String) -> Int { line.prefix { $0 == " " }.count / 2 }
}

extension Signal {
    /// The signal a name in a result line stands for (SIGSEGV, SIGBUS, ...).
    init(named name: String) {
        let known: [Signal] = [.segv, .bus, .kill, .abort, .term, .interrupt, .hangup, .pipe]
        self = known.first { $0.description == name } ?? Signal(rawValue: 0)
    }
}
