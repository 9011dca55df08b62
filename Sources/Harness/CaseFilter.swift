/// The kernel harness's test filters (`test_enabled()` in kselftest_harness.h).
///
/// Rules are checked in command-line order and the first one that matches
/// decides: a lowercase rule (-t, -f, -v, -r) includes, an uppercase one
/// (-T, -F, -V) excludes. A case no rule matches runs only if there is no
/// positive rule at all ("just exclusions, everything else passes").
public struct CaseFilter: Sendable, Hashable {
    public enum Rule: Sendable, Hashable {
        /// -t name: include the test.
        case includeTest(String)
        /// -T name: exclude the test.
        case excludeTest(String)
        /// -f name: include the fixture.
        case includeFixture(String)
        /// -F name: exclude the fixture.
        case excludeFixture(String)
        /// -v name: include the variant.
        case includeVariant(String)
        /// -V name: exclude the variant.
        case excludeVariant(String)
        /// -r fixture.variant.test: run that case.
        case run(String)

        /// The getopt letter the kernel harness uses for this rule.
        public var option: Character {
            switch self {
            case .includeTest: "t"
            case .excludeTest: "T"
            case .includeFixture: "f"
            case .excludeFixture: "F"
            case .includeVariant: "v"
            case .excludeVariant: "V"
            case .run: "r"
            }
        }

        /// islower(opt): -t, -f, -v and -r are positive.
        public var isPositive: Bool {
            switch self {
            case .includeTest, .includeFixture, .includeVariant, .run: true
            case .excludeTest, .excludeFixture, .excludeVariant: false
            }
        }

        /// The rule for getopt letter `option` with `argument`, or nil for another letter.
        public init?(option: Character, argument: String) {
            switch option {
            case "t": self = .includeTest(argument)
            case "T": self = .excludeTest(argument)
            case "f": self = .includeFixture(argument)
            case "F": self = .excludeFixture(argument)
            case "v": self = .includeVariant(argument)
            case "V": self = .excludeVariant(argument)
            case "r": self = .run(argument)
            default: return nil
            }
        }

        /// true/false when this rule decides `name`, nil when it does not match.
        public func decision(for name: CaseName) -> Bool? {
            switch self {
            case .includeTest(let test), .excludeTest(let test):
                name.test == test ? isPositive : nil
            case .includeFixture(let fixture), .excludeFixture(let fixture):
                name.fixture == fixture ? isPositive : nil
            case .includeVariant(let variant), .excludeVariant(let variant):
                name.variant == variant ? isPositive : nil
            case .run(let full):
                name.description == full ? true : nil
            }
        }

        /// The name the rule looks for.
        public var argument: String {
            switch self {
            case .includeTest(let a), .excludeTest(let a), .includeFixture(let a), .excludeFixture(let a),
                 .includeVariant(let a), .excludeVariant(let a), .run(let a): a
            }
        }
    }

    public var rules: [Rule]

    public init(_ rules: [Rule] = []) { self.rules = rules }

    /// Whether any rule is positive.
    public var hasPositive: Bool { rules.contains { $0.isPositive } }

    /// test_enabled(): whether the case `name` runs.
    public func isEnabled(_ name: CaseName) -> Bool {
        for rule in rules {
            if let decision = rule.decision(for: name) { return decision }
        }
        return !hasPositive
    }

    /// The enabled cases, in run order.
    public func select(_ cases: [TestCase]) -> [TestCase] {
        cases.filter { isEnabled($0.name) }
    }

    /// Whether the rules' order can change what runs: some case is matched by
    /// both an including and an excluding rule (first match wins).
    public static func orderMatters(_ rules: [Rule], over cases: [TestCase]) -> Bool {
        cases.contains { testCase in
            let decisions = Set(rules.compactMap { $0.decision(for: testCase.name) })
            return decisions.count > 1
        }
    }
}

/// The cases a run will execute and the header counts the kernel prints.
public struct RunPlan: Sendable {
    public let cases: [TestCase]

    public init(cases: [TestCase]) { self.cases = cases }

    /// "Starting N tests ...".
    public var testCount: Int { cases.count }

    /// "... from M test cases.": the fixture-variant pairs with at least one enabled test.
    public var caseCount: Int {
        var seen: Set<String> = []
        for testCase in cases { seen.insert("\(testCase.name.fixture).\(testCase.name.variant)") }
        return seen.count
    }
}
