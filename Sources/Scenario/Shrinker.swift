/// Shrinks a failing scenario to a minimal one that still fails the same way.
///
/// Candidates come from the syntax tree, biggest cuts first: chunks of
/// statements removed (delta debugging, halving the chunk size), a statement
/// removed with every statement that uses what it defines, a fork block
/// replaced by its body, then each statement made simpler (fewer pages,
/// narrower ranges, plainer patterns and options). A candidate that is not a
/// valid scenario (a name used before it is defined) is dropped without
/// running. The first candidate of a batch that still fails becomes the new
/// scenario and the search starts again; it ends when no candidate fails or
/// the attempts run out. `fails` runs a batch (in parallel processes, in the
/// CLI) and says which still fail; it is the only thing that runs anything.
public struct ScenarioShrinker {
    public var maxAttempts: Int
    public var batchSize: Int

    public init(maxAttempts: Int = 1500, batchSize: Int = 2) {
        self.maxAttempts = maxAttempts
        self.batchSize = max(1, batchSize)
    }

    public struct Result {
        public var scenario: Scenario
        /// Candidates run.
        public var attempts: Int
        /// Candidates that still failed (each a step down).
        public var steps: Int
    }

    public func shrink(_ scenario: Scenario, fails: ([Scenario]) -> [Bool]) -> Result {
        var current = Self.renumbered(scenario) ?? scenario
        var attempts = 0
        var steps = 0
        var seen: Set<String> = [ScenarioPrinter.print(current)]
        search: while attempts < maxAttempts {
            var batch: [Scenario] = []
            for candidate in Self.candidates(current.statements) {
                let s = Scenario(name: scenario.name, statements: candidate)
                guard let valid = Self.renumbered(s), seen.insert(ScenarioPrinter.print(valid)).inserted else { continue }
                batch.append(valid)
                if batch.count == batchSize || attempts + batch.count >= maxAttempts {
                    attempts += batch.count
                    if let hit = zip(batch, fails(batch)).first(where: { $0.1 })?.0 {
                        current = hit
                        steps += 1
                        continue search
                    }
                    batch.removeAll()
                    if attempts >= maxAttempts { break search }
                }
            }
            if !batch.isEmpty {
                attempts += batch.count
                if let hit = zip(batch, fails(batch)).first(where: { $0.1 })?.0 {
                    current = hit
                    steps += 1
                    continue search
                }
            }
            break
        }
        return Result(scenario: current, attempts: attempts, steps: steps)
    }

    /// The scenario printed and parsed again (line numbers as in its file), or nil if it is not valid.
    static func renumbered(_ scenario: Scenario) -> Scenario? {
        guard !scenario.statements.isEmpty,
              var parsed = try? ScenarioParser.parse(ScenarioPrinter.print(scenario), file: scenario.name) else { return nil }
        parsed.name = scenario.name
        return parsed
    }

    /// Every smaller variant of `statements`, most reduced first (lazily).
    static func candidates(_ statements: [Statement]) -> AnySequence<[Statement]> {
        AnySequence { () -> AnyIterator<[Statement]> in
            var stages: [() -> [[Statement]]] = [
                { removals(statements) },
                { dependentRemovals(statements) },
                { remapBypasses(statements) },
                { nested(statements) },
                { simplifications(statements) },
            ]
            var pending: [[Statement]] = []
            return AnyIterator {
                while pending.isEmpty {
                    guard !stages.isEmpty else { return nil }
                    pending = stages.removeFirst()().reversed()
                }
                return pending.popLast()
            }
        }
    }

    /// Chunks removed: halves, quarters, ..., single statements.
    static func removals(_ s: [Statement]) -> [[Statement]] {
        var out: [[Statement]] = []
        var size = s.count / 2
        while size >= 1 {
            var start = 0
            while start < s.count {
                out.append(Array(s[..<start] + s[min(start + size, s.count)...]))
                start += size
            }
            size /= 2
        }
        return out
    }

    /// A defining statement removed with everything that uses its names (transitively).
    static func dependentRemovals(_ s: [Statement]) -> [[Statement]] {
        var out: [[Statement]] = []
        for (k, statement) in s.enumerated() {
            var names = defines(statement.operation)
            guard !names.isEmpty else { continue }
            var kept: [Statement] = Array(s[..<k])
            for later in s[(k + 1)...] {
                if !uses(later.operation).isDisjoint(with: names) {
                    names.formUnion(defines(later.operation))
                } else {
                    kept.append(later)
                }
            }
            out.append(kept)
        }
        return out
    }

    /// Inside fork blocks: the block replaced by its body, and the body's own candidates.
    static func nested(_ s: [Statement]) -> [[Statement]] {
        var out: [[Statement]] = []
        for (k, statement) in s.enumerated() {
            guard case .fork(let body) = statement.operation else { continue }
            out.append(Array(s[..<k]) + body + Array(s[(k + 1)...]))
            for smaller in candidates(body) where !smaller.isEmpty {
                var copy = s
                copy[k].operation = .fork(smaller)
                out.append(copy)
            }
        }
        return out
    }

    /// Each statement replaced by each of its simpler forms.
    static func simplifications(_ s: [Statement]) -> [[Statement]] {
        var out: [[Statement]] = []
        for (k, statement) in s.enumerated() {
            for simpler in simpler(statement.operation) {
                var copy = s
                copy[k] = Statement(simpler)
                out.append(copy)
            }
            if !statement.expectations.isEmpty {
                var copy = s
                copy[k].expectations = []
                out.append(copy)
            }
        }
        return out
    }
}
