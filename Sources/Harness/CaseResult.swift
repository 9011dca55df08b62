import ABI

/// What the harness reports for one case.
public enum Verdict: Hashable, Sendable {
    case pass
    case fail
    case skip(String)

    /// "pass", "fail" or "skip".
    public var name: String {
        switch self {
        case .pass: "pass"
        case .fail: "fail"
        case .skip: "skip"
        }
    }

    /// __test_passed(): a skip counts as passed in "# PASSED: x / N".
    public var countsAsPassed: Bool {
        if case .fail = self { return false }
        return true
    }
}

/// One finished case.
public struct CaseResult: Sendable, Hashable {
    /// fixture.variant.test.
    public var name: String
    /// The test's own name (what the kernel harness's "# <test>: ..." lines use).
    public var testName: String
    public var verdict: Verdict
    /// Why it failed, when known: the ASSERT text or how the process ended.
    public var failureReason: String?
    /// Wall time of the case, including its process's start and end, in seconds.
    public var duration: Double
    /// The case's stdout and stderr, merged in order (only when captured).
    public var output: String
    /// What the case wrote, stream by stream in the order it arrived (only when
    /// captured), for a reporter to replay on the harness's own stdout and stderr.
    public var capturedOutput: [OutputChunk]
    /// Lines the parent harness adds about the case ("# <test>: Test terminated by timeout").
    public var diagnostics: [String]

    public init(name: String, testName: String, verdict: Verdict, failureReason: String? = nil,
                duration: Double = 0, output: String = "", capturedOutput: [OutputChunk] = [],
                diagnostics: [String] = []) {
        self.name = name
        self.testName = testName
        self.verdict = verdict
        self.failureReason = failureReason
        self.duration = duration
        self.output = output
        self.capturedOutput = capturedOutput
        self.diagnostics = diagnostics
    }

    /// The skip reason or the failure reason.
    public var reason: String? {
        if case .skip(let reason) = verdict { return reason }
        return failureReason
    }
}

extension CaseResult {
    /// The result of a case process that ended with `status` (nil: killed at its
    /// timeout) after reporting `reported` on its verdict pipe, with the kernel
    /// harness's diagnostics ("# <test>: Test terminated by ...") for a failure.
    static func of(_ testCase: TestCase, status: ExitStatus?, reported: CaseOutcome?, duration: Double,
                   chunks: [OutputChunk], captured: Bool) -> CaseResult {
        var result = CaseResult(name: testCase.name.description, testName: testCase.name.test, verdict: .fail,
                                duration: duration)
        if captured {
            result.output = String(decoding: chunks.flatMap(\.bytes), as: UTF8.self)
            result.capturedOutput = chunks
        }
        var ending: String?
        switch status {
        case nil:
            ending = TAP.Ending.timeout
        case .exited(KSFTExit.pass)?:
            result.verdict = .pass
        case .exited(KSFTExit.skip)?:
            if case .skipped(let reason) = reported {
                result.verdict = .skip(reason)
            } else {
                result.verdict = .skip("unknown")
            }
        case .exited?:
            if case .assertionFailed(let message) = reported {
                ending = TAP.Ending.assertion
                result.failureReason = message
            } else {
                ending = TAP.Ending.failed
            }
        case .signaled(let signal)?:
            ending = signal == .abort ? TAP.Ending.assertion : TAP.Ending.signal(signal.rawValue)
        }
        if let ending, result.verdict == .fail {
            result.diagnostics.append(TAP.diagnostic(testCase.name.test, ending))
            result.failureReason = result.failureReason.map { "\(ending): \($0)" } ?? ending
        }
        if captured, !result.diagnostics.isEmpty {
            result.output += result.diagnostics.map { $0 + "\n" }.joined()
        }
        return result
    }
}

/// How a case process's stdout and stderr reach the harness.
public enum OutputCapture: Sendable, Hashable {
    /// Not captured: the case writes straight to the harness's stdout and stderr (sequential TAP).
    case inherit
    /// One pipe for both streams: the exact order of all the case wrote, as
    /// `output`, and as one stdout chunk in `capturedOutput`.
    case merged
    /// Two pipes: each byte keeps its stream (chunks in `capturedOutput`); the order
    /// between the streams is the order the harness read them in.
    case separate
}

/// Bytes a case wrote to one of its streams.
public struct OutputChunk: Sendable, Hashable {
    /// 1 (stdout) or 2 (stderr).
    public var stream: Int32
    public var bytes: [UInt8]

    public init(stream: Int32, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// The counts of `ksft_print_cnts()` and the run's verdict.
public struct RunTotals: Sendable, Hashable {
    public var pass = 0
    public var fail = 0
    public var skip = 0
    /// Never produced by hmm-tests (no XFAIL/XPASS, no error results); kept for the Totals line.
    public var xfail = 0
    public var xpass = 0
    public var error = 0

    public init() {}

    public init(_ results: [CaseResult]) {
        for result in results { add(result.verdict) }
    }

    public mutating func add(_ verdict: Verdict) {
        switch verdict {
        case .pass: pass += 1
        case .fail: fail += 1
        case .skip: skip += 1
        }
    }

    /// Cases counted as passed (pass + skip): "# PASSED: x / N".
    public var passedCount: Int { pass + skip + xfail + xpass }
    public var total: Int { pass + fail + skip + xfail + xpass + error }
    /// ksft_exit(ret == 0): nothing failed.
    public var succeeded: Bool { fail == 0 && error == 0 }
    /// 0 if nothing failed (even if everything was skipped), 1 otherwise.
    public var exitCode: Int32 { succeeded ? KSFTExit.pass : KSFTExit.fail }
}

/// How the backend is named in the report's first line and in JSON.
public struct BackendInfo: Sendable, Hashable {
    /// "kernel" or "sim".
    public var name: String
    /// e.g. "simulated Linux 7.3 test_hmm" or "Linux 7.3.4, ABI 7.3, /dev/hmm_dmirror0".
    public var detail: String
    /// The ABI generation the run uses, e.g. "7.3".
    public var abi: String

    public init(name: String, detail: String, abi: String) {
        self.name = name
        self.detail = detail
        self.abi = abi
    }

    /// "# dmirror: backend sim (simulated Linux 7.3 test_hmm)".
    public var tapComment: String { "# dmirror: backend \(name) (\(detail))" }
}
