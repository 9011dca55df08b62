import MachineInterface

/// `fixture.variant.test`, the kernel harness's name for a case.
public struct CaseName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let fixture: String
    /// Empty for a fixture without variants.
    public let variant: String
    public let test: String

    public init(fixture: String, variant: String, test: String) {
        self.fixture = fixture
        self.variant = variant
        self.test = test
    }

    /// e.g. "hmm.hmm_device_private.open_close".
    public var description: String { variant.isEmpty ? "\(fixture).\(test)" : "\(fixture).\(variant).\(test)" }

    public static func < (a: CaseName, b: CaseName) -> Bool { a.description < b.description }
}

/// How a case ended inside its own process (the kernel harness's
/// `_metadata->exit_code`, plus whether an ASSERT_* stopped it).
public enum CaseOutcome: Hashable, Sendable {
    /// KSFT_PASS.
    case passed
    /// An EXPECT_* failed and the body ran to its end (KSFT_FAIL, "Test failed").
    case expectationFailed
    /// An ASSERT_* (or an unexpected error) stopped the case after teardown
    /// (the kernel harness abort()s: "Test terminated by assertion").
    case assertionFailed(String)
    /// SKIP(): KSFT_SKIP with the reason.
    case skipped(String)

    /// The kselftest exit status a case process ends with.
    public var exitCode: Int32 {
        switch self {
        case .passed: KSFTExit.pass
        case .expectationFailed, .assertionFailed: KSFTExit.fail
        case .skipped: KSFTExit.skip
        }
    }
}

/// kselftest.h's exit codes: the one definition every dmirror process exits with.
public enum KSFTExit {
    public static let pass: Int32 = 0
    /// A case failed, or the arguments were bad (kselftest's harness exits 1 on a bad option).
    public static let fail: Int32 = 1
    public static let xfail: Int32 = 2
    public static let xpass: Int32 = 3
    /// KSFT_SKIP: the suite (or the command) cannot run here.
    public static let skip: Int32 = 4
}

/// One runnable case. The harness gives its body a machine in a process of
/// its own and reports how it ended; it knows nothing else about it.
public struct TestCase: Sendable {
    public let name: CaseName
    /// TEST_F_TIMEOUT's value; 30 s (TEST_TIMEOUT_DEFAULT) otherwise.
    public let timeoutSeconds: Int
    /// A benchmark prints measurements and runs for minutes.
    public let isBenchmark: Bool
    /// Runs the case (setup, body, teardown) on `machine`; `log` writes one stderr line.
    public let execute: @Sendable (_ machine: any Machine, _ log: @escaping @Sendable (String) -> Void) -> CaseOutcome

    public init(name: CaseName, timeoutSeconds: Int = 30, isBenchmark: Bool = false,
                execute: @escaping @Sendable (any Machine, @escaping @Sendable (String) -> Void) -> CaseOutcome) {
        self.name = name
        self.timeoutSeconds = timeoutSeconds
        self.isBenchmark = isBenchmark
        self.execute = execute
    }
}
