import Testing
@testable import Harness
@testable import Suite

/// Synthetic cases for harness tests (bodies that do nothing).
enum HarnessFixtures {
    static func test(_ fixture: Fixture, _ name: String) -> TestDefinition {
        TestDefinition(fixture, name) { _ in }
    }

    /// `names` (fixture hmm) in each of `variants`, variant-major like the kernel.
    static func cases(_ names: [String], variants: [Variant]) -> [TestCase] {
        variants.flatMap { variant in names.map { test(variant.fixture, $0).testCase(in: variant) } }
    }

    /// A small suite shaped like hmm-tests: hmm {a, b, c} and hmm2 {a, d}, both variants each.
    static var suite: [TestCase] {
        cases(["a", "b", "c"], variants: Variant.all(of: .hmm)) + cases(["a", "d"], variants: Variant.all(of: .hmm2))
    }

    static func names(_ filter: CaseFilter) -> [String] { filter.select(suite).map(\.name.description) }
}

/// test_enabled(): first match wins; no positive filter means "everything but the exclusions".
@Suite("Harness: kselftest filters")
struct HarnessFilterTests {
    typealias Rule = CaseFilter.Rule

    @Test("No filter runs everything in order")
    func noFilter() {
        #expect(HarnessFixtures.names(CaseFilter()) == HarnessFixtures.suite.map(\.name.description))
        #expect(HarnessFixtures.suite.count == 10)
    }

    @Test("-r runs exactly one case")
    func runOne() {
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.hmm_device_coherent.b")])) == ["hmm.hmm_device_coherent.b"])
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.hmm_device_coherent.b"), .run("hmm2.hmm2_device_private.d")]))
                == ["hmm.hmm_device_coherent.b", "hmm2.hmm2_device_private.d"])
        // A prefix is not a match.
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.hmm_device_coherent")])) == [])
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.hmm_device_coherent.b.")])) == [])
    }

    @Test("-t selects a test in every fixture and variant")
    func includeTest() {
        #expect(HarnessFixtures.names(CaseFilter([.includeTest("a")])) == [
            "hmm.hmm_device_private.a", "hmm.hmm_device_coherent.a",
            "hmm2.hmm2_device_private.a", "hmm2.hmm2_device_coherent.a",
        ])
    }

    @Test("-T alone excludes and keeps the rest")
    func excludeOnly() {
        let names = HarnessFixtures.names(CaseFilter([.excludeTest("a"), .excludeVariant("hmm_device_coherent")]))
        #expect(names == ["hmm.hmm_device_private.b", "hmm.hmm_device_private.c",
                          "hmm2.hmm2_device_private.d", "hmm2.hmm2_device_coherent.d"])
    }

    @Test("-f / -F / -v / -V")
    func fixtureAndVariant() {
        #expect(HarnessFixtures.names(CaseFilter([.includeFixture("hmm2")])).count == 4)
        #expect(HarnessFixtures.names(CaseFilter([.excludeFixture("hmm2")])).count == 6)
        #expect(HarnessFixtures.names(CaseFilter([.includeVariant("hmm2_device_coherent")]))
                == ["hmm2.hmm2_device_coherent.a", "hmm2.hmm2_device_coherent.d"])
        #expect(HarnessFixtures.names(CaseFilter([.excludeVariant("hmm_device_private"), .excludeFixture("hmm2")]))
                == ["hmm.hmm_device_coherent.a", "hmm.hmm_device_coherent.b", "hmm.hmm_device_coherent.c"])
    }

    @Test("First match wins: '-T foo -v bla' is bla without foo; '-v bla -T foo' is all of bla")
    func firstMatchWins() {
        let excludeFirst = HarnessFixtures.names(CaseFilter([.excludeTest("a"), .includeVariant("hmm_device_private")]))
        #expect(excludeFirst == ["hmm.hmm_device_private.b", "hmm.hmm_device_private.c"])
        let includeFirst = HarnessFixtures.names(CaseFilter([.includeVariant("hmm_device_private"), .excludeTest("a")]))
        #expect(includeFirst == ["hmm.hmm_device_private.a", "hmm.hmm_device_private.b", "hmm.hmm_device_private.c"])
    }

    @Test("A positive filter anywhere turns the default to 'not selected'")
    func positiveDefault() {
        // -T x matches nothing; -t b is positive, so only b runs.
        #expect(HarnessFixtures.names(CaseFilter([.excludeTest("x"), .includeTest("b")]))
                == ["hmm.hmm_device_private.b", "hmm.hmm_device_coherent.b"])
        // -r of a missing case: nothing runs at all.
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.nope.a")])) == [])
        // -f hmm plus -T a: exclusion first for a, fixture for the rest of hmm; hmm2 not selected.
        #expect(HarnessFixtures.names(CaseFilter([.excludeTest("a"), .includeFixture("hmm")]))
                == ["hmm.hmm_device_private.b", "hmm.hmm_device_private.c", "hmm.hmm_device_coherent.b", "hmm.hmm_device_coherent.c"])
        // -r is positive but never excludes: a later -t still includes.
        #expect(HarnessFixtures.names(CaseFilter([.run("hmm.hmm_device_private.a"), .includeTest("d")]))
                == ["hmm.hmm_device_private.a", "hmm2.hmm2_device_private.d", "hmm2.hmm2_device_coherent.d"])
    }

    @Test("Rules map from getopt letters")
    func letters() {
        #expect(Rule(option: "r", argument: "x") == .run("x"))
        #expect(Rule(option: "t", argument: "x") == .includeTest("x"))
        #expect(Rule(option: "T", argument: "x") == .excludeTest("x"))
        #expect(Rule(option: "f", argument: "x") == .includeFixture("x"))
        #expect(Rule(option: "F", argument: "x") == .excludeFixture("x"))
        #expect(Rule(option: "v", argument: "x") == .includeVariant("x"))
        #expect(Rule(option: "V", argument: "x") == .excludeVariant("x"))
        #expect(Rule(option: "l", argument: "x") == nil)
        for rule: Rule in [.run("x"), .includeTest("x"), .includeFixture("x"), .includeVariant("x")] { #expect(rule.isPositive) }
        for rule: Rule in [.excludeTest("x"), .excludeFixture("x"), .excludeVariant("x")] { #expect(!rule.isPositive) }
    }

    @Test("'Starting N tests from M test cases' counts fixture-variant pairs")
    func planCounts() {
        #expect(RunPlan(cases: HarnessFixtures.suite).caseCount == 4)
        #expect(RunPlan(cases: HarnessFixtures.suite).testCount == 10)
        #expect(RunPlan(cases: CaseFilter([.includeTest("b")]).select(HarnessFixtures.suite)).caseCount == 2)
        #expect(RunPlan(cases: []).caseCount == 0)
    }
}
