import ArgumentParser
import Harness
import Suite

/// The suite's case selection, shared by `run` and `list`: the kernel harness's filters.
struct Selection: ParsableArguments {
    @Option(name: [.customShort("r", allowingJoined: true), .customLong("run")],
            help: ArgumentHelp("Run the case fixture.variant.test.", valueName: "fixture.variant.test"))
    var run: [String] = []

    @Option(name: [.customShort("t", allowingJoined: true), .customLong("test")],
            help: ArgumentHelp("Include test <test> (every variant).", valueName: "test"))
    var test: [String] = []

    @Option(name: [.customShort("T", allowingJoined: true), .customLong("exclude-test")],
            help: ArgumentHelp("Exclude test <test>.", valueName: "test"))
    var excludeTest: [String] = []

    @Option(name: [.customShort("f", allowingJoined: true), .customLong("fixture")],
            help: ArgumentHelp("Include fixture <fixture> (hmm, hmm2).", valueName: "fixture"))
    var fixture: [String] = []

    @Option(name: [.customShort("F", allowingJoined: true), .customLong("exclude-fixture")],
            help: ArgumentHelp("Exclude fixture <fixture>.", valueName: "fixture"))
    var excludeFixture: [String] = []

    @Option(name: [.customShort("v", allowingJoined: true), .customLong("variant")],
            help: ArgumentHelp("Include variant <variant> (e.g. hmm_device_private).", valueName: "variant"))
    var variant: [String] = []

    @Option(name: [.customShort("V", allowingJoined: true), .customLong("exclude-variant")],
            help: ArgumentHelp("Exclude variant <variant>.", valueName: "variant"))
    var excludeVariant: [String] = []

    @Flag(help: "Also run dmirror's own cases after the 78 of hmm-tests.")
    var extra = false

    @Flag(name: .customLong("harness-selftest"), help: .hidden)
    var harnessSelftest = false

    /// The rules grouped by option (argument-parser keeps one array per option).
    var groupedRules: [CaseFilter.Rule] {
        run.map(CaseFilter.Rule.run) + test.map(CaseFilter.Rule.includeTest)
            + excludeTest.map(CaseFilter.Rule.excludeTest) + fixture.map(CaseFilter.Rule.includeFixture)
            + excludeFixture.map(CaseFilter.Rule.excludeFixture) + variant.map(CaseFilter.Rule.includeVariant)
            + excludeVariant.map(CaseFilter.Rule.excludeVariant)
    }

    /// Every case this selection can see, in run order.
    var allCases: [TestCase] {
        if harnessSelftest { return HarnessSelfTest.cases }
        // Without --extra, an extra case still runs when -r names it exactly.
        let named = Set(run)
        return HMMSuite.cases + (extra ? HMMSuite.extraCases : HMMSuite.extraCases.filter { named.contains($0.name.description) })
    }

    /// The cases to run. `Command` is the subcommand this selection belongs to and
    /// `arguments` its own arguments: where the filters' order decides (first match
    /// wins), it is derived from argument-parser's parse of growing prefixes of them.
    /// A selection of no case is an error (exit 4) naming the nearest names.
    func plan<Command: ParsableCommand>(_ command: Command.Type, _ arguments: [String],
                                        selection: (Command) -> Selection) throws -> RunPlan {
        let cases = allCases
        var rules = groupedRules
        if CaseFilter.orderMatters(rules, over: cases) {
            rules = try FilterOrder.derive(Command.self, arguments, selection: selection, expected: rules)
        }
        let selected = CaseFilter(rules).select(cases)
        if selected.isEmpty && !cases.isEmpty {
            throw refuse(FilterOrder.noCaseMessage(rules, cases), exit: KSFTExit.skip)
        }
        return RunPlan(cases: selected)
    }
}

/// Recovers the command-line order of the filter options from argument-parser
/// itself: the arguments are parsed again prefix by prefix, and each rule is
/// placed where the parse first contains it. No second parser reads argv.
enum FilterOrder {
    static func derive<Command: ParsableCommand>(_ command: Command.Type, _ arguments: [String],
                                                 selection: (Command) -> Selection,
                                                 expected: [CaseFilter.Rule]) throws -> [CaseFilter.Rule] {
        var ordered: [CaseFilter.Rule] = []
        var seen: [CaseFilter.Rule] = []
        for end in 1...max(arguments.count, 1) where end <= arguments.count {
            guard let parsed = try? Command.parse(Array(arguments[..<end])) else { continue }
            let now = selection(parsed).groupedRules
            var added = now
            for rule in seen {
                if let index = added.firstIndex(of: rule) { added.remove(at: index) }
            }
            if added.count > 1 {
                throw ValidationError("cannot tell the order of \(added.map(describe).joined(separator: " and ")), "
                                      + "and it decides which cases run (first match wins): give them as separate arguments")
            }
            ordered += added
            seen = now
        }
        guard ordered.sorted(by: { describe($0) < describe($1) }) == expected.sorted(by: { describe($0) < describe($1) }) else {
            throw ValidationError("cannot tell the order of the filter options, and it decides which cases run (first match wins)")
        }
        return ordered
    }

    static func describe(_ rule: CaseFilter.Rule) -> String { "-\(rule.option) \(rule.argument)" }

    /// "no case matches -t migrat (did you mean migrate, migrate_fault?)": the closest names.
    static func noCaseMessage(_ rules: [CaseFilter.Rule], _ cases: [TestCase]) -> String {
        let positive = rules.filter(\.isPositive)
        guard !positive.isEmpty else {
            return "the filters \(rules.map(describe).joined(separator: " ")) exclude every case; `dmirror list` shows them"
        }
        var suggestions: [String] = []
        for rule in positive {
            let names: Set<String> = switch rule {
            case .includeTest: Set(cases.map(\.name.test))
            case .includeFixture: Set(cases.map(\.name.fixture))
            case .includeVariant: Set(cases.map(\.name.variant))
            default: Set(cases.map(\.name.description))
            }
            let nearest = names.sorted().sorted { distance($0, rule.argument) < distance($1, rule.argument) }.prefix(3)
            suggestions.append("\(describe(rule)) (did you mean \(nearest.joined(separator: ", "))?)")
        }
        return "no case matches " + suggestions.joined(separator: ", ") + "; `dmirror list` shows every case"
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
