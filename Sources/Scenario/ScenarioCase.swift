import ABI
import Harness
import MachineInterface

/// A scenario as a harness case: the harness forks a process for it and gives
/// it a fresh machine (so a CPU access that dies of SIGSEGV ends only this
/// scenario), and a reporter that captures output gets its lines.
public enum ScenarioCase {
    /// The case's name: `scenario.<name>`.
    public static func caseName(_ name: String) -> CaseName {
        CaseName(fixture: "scenario", variant: "", test: name)
    }

    /// The case that runs `scenario`, writing each line with `emit` (one write per line).
    public static func make(_ scenario: Scenario, name: String, options: ScenarioRunOptions, timeoutSeconds: Int = 30,
                            emit: @escaping @Sendable (String) -> Void) -> TestCase {
        TestCase(name: caseName(name), timeoutSeconds: timeoutSeconds) { machine, _ in
            ScenarioRunner(scenario, options: options, emit: emit).run(on: machine)
            // The verdict is the report's, decided from the lines in the parent.
            return .passed
        }
    }

    /// What a finished case's output and ending make of the scenario.
    public static func report(_ result: CaseResult, scenario: Scenario) -> ScenarioReport {
        // The harness appends its own diagnostics to captured output; the ending says the same.
        var output = result.output
        for diagnostic in result.diagnostics {
            output = output.replacingOccurrences(of: diagnostic + "\n", with: "")
        }
        return ScenarioOutput.report(output: output, scenario: scenario, ending: ending(result))
    }

    /// How the case process ended, from the harness's verdict and reason.
    static func ending(_ result: CaseResult) -> ScenarioEnding {
        if case .pass = result.verdict { return .exited(0) }
        let reason = result.failureReason ?? ""
        if reason.hasPrefix(TAP.Ending.timeout) { return .timeout }
        if reason.hasPrefix(TAP.Ending.assertion) { return .signaled(.abort) }
        let prefix = TAP.Ending.signal(0).dropLast(1)
        if reason.hasPrefix(prefix) {
            let digits = reason.dropFirst(prefix.count).prefix { $0.isNumber }
            return .signaled(Signal(rawValue: Int32(digits) ?? 0))
        }
        return .exited(1)
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation here).
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
