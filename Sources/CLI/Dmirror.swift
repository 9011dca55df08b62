import ArgumentParser
import Harness

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
        subcommands: [Run.self, List.self, ScenarioCommand.self, FuzzCommand.self, ExploreCommand.self, BenchCommand.self, DoctorCommand.self, CompareTraces.self,
                      ABICommand.self]
    )
}

/// Prints one "dmirror: ..." line on stderr and gives the error that exits with `code`.
func refuse(_ message: String, exit code: Int32) -> ExitCode {
    StandardError.line("dmirror: " + message)
    return ExitCode(code)
}
