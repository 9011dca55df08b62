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

        /// true/false when this rule decides `suiteCase`, nil when it does not match.
        func decision(for suiteCase: SuiteCase) -> Bool? {
            switch self {
            case .includeTest(let name), .excludeTest(let name):
                suiteCase.test.name == name ? isPositive : nil
            case .includeFixture(let name), .excludeFixture(let name):
                suiteCase.fixture.rawValue == name ? isPositive : nil
            case .includeVariant(let name), .excludeVariant(let name):
                suiteCase.variant.name == name ? isPositive : nil
            case .run(let name):
                suiteCase.name == name ? true : nil
            }
        }
    }

    public var rules: [Rule]

    public init(_ rules: [Rule] = []) { self.rules = rules }

    /// Whether any rule is positive.
    public var hasPositive: Bool { rules.contains { $0.isPositive } }

    /// test_enabled(): whether `suiteCase` runs.
    public func isEnabled(_ suiteCase: SuiteCase) -> Bool {
        for rule in rules {
            if let decision = rule.decision(for: suiteCase) { return decision }
        }
        return !hasPositive
    }

    /// The enabled cases, in run order.
    public func select(_ cases: [SuiteCase]) -> [SuiteCase] {
        cases.filter(isEnabled)
    }
}

/// The cases a run will execute and the header counts the kernel prints.
public struct RunPlan: Sendable {
    public let cases: [SuiteCase]

    public init(cases: [SuiteCase]) { self.cases = cases }

    /// "Starting N tests ...".
    public var testCount: Int { cases.count }

    /// "... from M test cases.": the fixture-variant pairs with at least one enabled test.
    public var caseCount: Int {
        var seen: [Variant] = []
        for suiteCase in cases where !seen.contains(suiteCase.variant) {
            seen.append(suiteCase.variant)
        }
        return seen.count
    }
}
