import ArgumentParser
import DmirrorDevice
import DmirrorMachine
import DmirrorSuite
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror`: the hmm-tests suite against the real test_hmm driver or the simulator.
struct Dmirror: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmirror",
        abstract: "Run Linux's hmm-tests suite against /dev/hmm_dmirrorN (test_hmm) or dmirror's simulator.",
        discussion: """
            Output is kselftest TAP, line-compatible with tools/testing/selftests/mm/hmm-tests. \
            Exit status: 0 if nothing failed (even if everything was skipped), 1 if a case failed \
            or the arguments were bad, 4 if the suite cannot run at all (no test_hmm for --backend kernel).
            """,
        subcommands: [Run.self, List.self, CompareTraces.self, ABICommand.self, RunCase.self]
    )
}

enum KSFTExitCode {
    /// kselftest's harness exits 1 on a bad option.
    static let usage: Int32 = 1
    /// KSFT_SKIP: the suite cannot run here.
    static let skip: Int32 = 4
}

enum FileHandleLite {
    /// One message to stderr, newline-terminated.
    static func standardError(_ text: String) {
        var line = text.hasSuffix("\n") ? text : text + "\n"
        line.withUTF8 { buffer in
            guard var base = buffer.baseAddress else { return }
            var left = buffer.count
            while left > 0 {
                let n = write(2, base, left)
                if n < 0 { if errno == EINTR { continue }; return }
                base += n
                left -= n
            }
        }
    }
}

extension ABIGeneration: ExpressibleByArgument {}

/// The suite's case selection, shared by `run` and `list`.
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

    /// The filter rules in command-line order (the kernel harness: first match wins).
    var filter: CaseFilter {
        let grouped: [CaseFilter.Rule] = run.map(CaseFilter.Rule.run) + test.map(CaseFilter.Rule.includeTest)
            + excludeTest.map(CaseFilter.Rule.excludeTest) + fixture.map(CaseFilter.Rule.includeFixture)
            + excludeFixture.map(CaseFilter.Rule.excludeFixture) + variant.map(CaseFilter.Rule.includeVariant)
            + excludeVariant.map(CaseFilter.Rule.excludeVariant)
        let ordered = FilterArguments.rules(in: Array(CommandLine.arguments.dropFirst()))
        // The scan of the raw arguments must agree with what argument-parser parsed.
        if ordered.count == grouped.count && Set(ordered) == Set(grouped) {
            return CaseFilter(ordered)
        }
        return CaseFilter(grouped)
    }

    /// Every case this selection can see, in run order.
    var allCases: [SuiteCase] {
        if harnessSelftest { return HarnessSelfTest.cases }
        // Without --extra, an extra case still runs when -r names it exactly.
        let named = Set(run)
        return HMMSuite.cases + (extra ? HMMSuite.extraCases : HMMSuite.extraCases.filter { named.contains($0.name) })
    }

    var plan: RunPlan { RunPlan(cases: filter.select(allCases)) }
}

/// Recovers the order of the filter options from the raw arguments
/// (argument-parser keeps one array per option; the kernel's first-match-wins needs their order).
enum FilterArguments {
    static let letters: [String: Character] = [
        "run": "r", "test": "t", "exclude-test": "T", "fixture": "f",
        "exclude-fixture": "F", "variant": "v", "exclude-variant": "V",
    ]
    /// Options that take a value but are not filters.
    static let valueOptions: Set<String> = ["--backend", "--abi", "--format", "--verdict-fd", "--trace", "--jobs", "-j"]

    static func rules(in arguments: [String]) -> [CaseFilter.Rule] {
        var rules: [CaseFilter.Rule] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            if valueOptions.contains(argument) { index += 1; continue }
            if argument.hasPrefix("--") {
                let body = argument.dropFirst(2)
                let name: Substring
                let value: String?
                if let equals = body.firstIndex(of: "=") {
                    name = body[..<equals]
                    value = String(body[body.index(after: equals)...])
                } else {
                    name = body
                    value = nil
                }
                guard let letter = letters[String(name)] else { continue }
                let argumentValue: String
                if let value {
                    argumentValue = value
                } else {
                    guard index < arguments.count else { break }
                    argumentValue = arguments[index]
                    index += 1
                }
                if let rule = CaseFilter.Rule(option: letter, argument: argumentValue) { rules.append(rule) }
            } else if argument.hasPrefix("-"), argument.count >= 2 {
                let letter = argument[argument.index(after: argument.startIndex)]
                guard "rtTfFvV".contains(letter) else { continue }
                let argumentValue: String
                if argument.count > 2 {
                    argumentValue = String(argument.dropFirst(2))
                } else {
                    guard index < arguments.count else { break }
                    argumentValue = arguments[index]
                    index += 1
                }
                if let rule = CaseFilter.Rule(option: letter, argument: argumentValue) { rules.append(rule) }
            }
        }
        return rules
    }
}
