import Foundation
import Testing
@testable import Harness
@testable import Suite

/// The `dmirror` executable end to end: listing, arguments, exit codes, and
/// isolation (each case in its own process; crashes and hangs are one failed case).
@Suite("Harness: the dmirror command")
struct HarnessCLITests {
    /// hmm-tests.c's TEST_Fs in file order (Linux 7.3 / mm-new): fixture and name.
    static let kernelTests: [(fixture: String, name: String)] = [
        ("hmm", "open_close"), ("hmm", "anon_read"), ("hmm", "anon_read_prot"), ("hmm", "anon_write"),
        ("hmm", "anon_write_prot"), ("hmm", "anon_write_child"), ("hmm", "anon_write_child_shared"),
        ("hmm", "anon_write_huge"), ("hmm", "anon_write_hugetlbfs"), ("hmm", "file_read"), ("hmm", "file_write"),
        ("hmm", "migrate"), ("hmm", "migrate_file_private"), ("hmm", "migrate_fault"), ("hmm", "migrate_release"),
        ("hmm", "migrate_shared"), ("hmm2", "migrate_mixed"), ("hmm", "migrate_multiple"),
        ("hmm", "anon_read_multiple"), ("hmm", "anon_teardown"), ("hmm", "mixedmap"), ("hmm2", "snapshot"),
        ("hmm", "compound"), ("hmm2", "double_map"), ("hmm", "exclusive"), ("hmm", "exclusive_mprotect"),
        ("hmm", "exclusive_cow"), ("hmm", "hmm_gup_test"), ("hmm", "hmm_cow_in_device"),
        ("hmm", "migrate_anon_huge_empty"), ("hmm", "migrate_anon_huge_zero"), ("hmm", "migrate_anon_huge_free"),
        ("hmm", "migrate_anon_huge_fault"), ("hmm", "migrate_partial_unmap_fault"), ("hmm", "migrate_remap_fault"),
        ("hmm", "migrate_anon_huge_err"), ("hmm", "migrate_anon_huge_zero_err"), ("hmm", "benchmark_thp_migration"),
        ("hmm", "userfaultfd_read"),
    ]

    /// The kernel harness's run order: hmm private, hmm coherent, hmm2 private, hmm2 coherent.
    static var kernelOrder: [String] {
        [("hmm", "hmm_device_private"), ("hmm", "hmm_device_coherent"),
         ("hmm2", "hmm2_device_private"), ("hmm2", "hmm2_device_coherent")].flatMap { fixture, variant in
            kernelTests.filter { $0.fixture == fixture }.map { "\(fixture).\(variant).\($0.name)" }
        }
    }

    @Test("HMMSuite.cases: 78 cases named and ordered as the kernel harness runs them")
    func caseOrder() {
        #expect(Self.kernelOrder.count == 78)
        #expect(HMMSuite.cases.map(\.name.description) == Self.kernelOrder)
        #expect(RunPlan(cases: HMMSuite.cases).caseCount == 4)
        let all = (HMMSuite.cases + HMMSuite.extraCases).map(\.name.description)
        #expect(Set(all).count == all.count, "case names are unique")
    }

    @Test("dmirror list prints the 78 names in run order; --extra appends the extras")
    func list() throws {
        let plain = try runDmirror(["list"])
        #expect(plain.status == 0)
        #expect(plain.stdoutLines == Self.kernelOrder)
        let extra = try runDmirror(["list", "--extra"])
        #expect(extra.status == 0)
        #expect(extra.stdoutLines == Self.kernelOrder + HMMSuite.extraCases.map(\.name.description))
    }

    @Test("Filters on the command line keep their order (first match wins)")
    func orderedFilters() throws {
        let excludeFirst = try runDmirror(["list", "-T", "migrate", "-v", "hmm2_device_private"])
        #expect(excludeFirst.stdoutLines == ["hmm2.hmm2_device_private.migrate_mixed",
                                             "hmm2.hmm2_device_private.snapshot",
                                             "hmm2.hmm2_device_private.double_map"])
        let includeFirst = try runDmirror(["list", "-v", "hmm2_device_private", "-T", "snapshot"])
        #expect(includeFirst.stdoutLines.count == 3)
        let joinedAndLong = try runDmirror(["list", "--exclude-test=snapshot", "-vhmm2_device_private"])
        #expect(joinedAndLong.stdoutLines == ["hmm2.hmm2_device_private.migrate_mixed", "hmm2.hmm2_device_private.double_map"])
        let one = try runDmirror(["list", "-r", "hmm.hmm_device_coherent.migrate"])
        #expect(one.stdoutLines == ["hmm.hmm_device_coherent.migrate"])
        let excluded = try runDmirror(["list", "-F", "hmm", "-V", "hmm2_device_coherent"])
        #expect(excluded.stdoutLines.count == 3)
    }

    @Test("Bad arguments exit 1 with one line that says what is wrong and where the help is; --help exits 0")
    func badArguments() throws {
        let bad = try runDmirror(["run", "--backend", "gpu"])
        #expect(bad.status == 1)
        #expect(bad.stderrLines.count == 1)
        #expect(bad.stderr.contains("'gpu'") && bad.stderr.contains("dmirror run --help"))
        #expect(bad.stdout.isEmpty)
        let unknown = try runDmirror(["run", "--bogus"])
        #expect(unknown.status == 1)
        let abi = try runDmirror(["run", "--abi", "4.19"])
        #expect(abi.status == 1)
        let noCommand = try runDmirror(["frobnicate"])
        #expect(noCommand.status == 1)
        let help = try runDmirror(["run", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--backend"))
        #expect(help.stdout.contains("-r, --run <fixture.variant.test>"))
        #expect(!help.stdout.contains("run-case"))
    }

    @Test("--backend kernel without test_hmm: one line naming the fix, exit 4",
          .enabled(if: !DmirrorExecutable.kernelDriverAvailable, "test_hmm is loaded here"))
    func kernelMissing() throws {
        let result = try runDmirror(["run", "--backend", "kernel"])
        #expect(result.status == 4)
        #expect(result.stdout.isEmpty)
        #expect(result.stderrLines.count == 1)
        let line = result.stderrLines.first ?? ""
        #expect(line.contains("test_hmm"))
        #expect(line.contains("/dev/hmm_dmirror0"))
    }

    @Test("auto picks the simulator when /dev/hmm_dmirror0 is unusable, says why on stderr, and TAP comes first",
          .enabled(if: !DmirrorExecutable.kernelDriverAvailable, "test_hmm is loaded here"))
    func autoFallsBack() throws {
        let result = try runDmirror(["run", "-r", "hmm.hmm_device_private.open_close"])
        #expect(result.stdoutLines.first == "TAP version 13")
        #expect(result.stdoutLines.dropFirst().first?.hasPrefix("# dmirror: backend sim (simulated Linux 7.3 test_hmm") == true)
        #expect(result.stderrLines.first?.hasPrefix("dmirror: auto: running the simulator: /dev/hmm_dmirror0") == true)
    }

    @Test("A selection of no case is an error (exit 4) that names the nearest cases; nothing runs")
    func emptyRun() throws {
        let result = try runDmirror(["run", "--backend", "sim", "-r", "hmm.nothing.here"])
        #expect(result.status == 4)
        #expect(result.stdout.isEmpty)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderrLines.first?.hasPrefix("dmirror: no case matches -r hmm.nothing.here (did you mean ") == true)
        let typo = try runDmirror(["list", "-t", "migrat"])
        #expect(typo.status == 4)
        #expect(typo.stderrLines.first?.contains("did you mean migrate") == true)
        let excluded = try runDmirror(["list", "-F", "hmm", "-F", "hmm2"])
        #expect(excluded.status == 4)
        #expect(excluded.stderrLines.first?.contains("exclude every case") == true)
    }

    @Test("--abi: a command the generation lacks is a SKIP naming it; the first line names the ABI")
    func forcedABI() throws {
        let result = try runDmirror(["run", "--backend", "sim", "--abi", "6.1", "-r", "hmm.hmm_device_private.userfaultfd_read"])
        #expect(result.status == 0)
        #expect(result.stdoutLines.first == "TAP version 13")
        #expect(result.stdoutLines.dropFirst().first == "# dmirror: backend sim (simulated Linux 7.3 test_hmm, ABI 6.1)")
        #expect(result.stdoutLines.contains { $0.hasPrefix("ok 1 hmm.hmm_device_private.userfaultfd_read # SKIP HMM_DMIRROR_READ_UNLOCKED does not exist in the Linux 6.1 ABI") })
    }

    @Test("-r of an extra case runs it without --extra")
    func extraByName() throws {
        let name = try #require(HMMSuite.extraCases.first?.name.description)
        let listed = try runDmirror(["list", "-r", name])
        #expect(listed.stdoutLines == [name])
    }

    // MARK: Isolation, through the hidden harness self-test cases

    func selftest(_ test: String, fixture: String = "hmm", variant: String = "hmm_device_private",
                  format: String = "tap") throws -> ProcessOutput {
        try runDmirror(["run", "--backend", "sim", "--harness-selftest", "--format", format,
                        "-r", "\(fixture).\(variant).\(test)"])
    }

    @Test("A passing case: its output lands between RUN and OK")
    func passingOutput() throws {
        let result = try selftest("harness_pass")
        #expect(result.status == 0)
        let lines = result.stdoutLines
        let run = try #require(lines.firstIndex(of: "#  RUN           hmm.hmm_device_private.harness_pass ..."))
        #expect(Array(lines[(run + 1)...]).prefix(4) == [
            "harness: stdout line 1", "harness: stdout line 2",
            "#            OK  hmm.hmm_device_private.harness_pass",
            "ok 1 hmm.hmm_device_private.harness_pass",
        ])
        #expect(result.stderrLines == ["# a TH_LOG note"])
    }

    @Test("EXPECT failure: 'Test failed', not ok, exit 1")
    func expectFailure() throws {
        let result = try selftest("harness_expect_fail")
        #expect(result.status == 1)
        #expect(result.stdoutLines.contains("not ok 1 hmm.hmm_device_private.harness_expect_fail"))
        #expect(result.stdoutLines.contains("harness: still running after EXPECT"))
        #expect(result.stderrLines.last == "# harness_expect_fail: Test failed")
        #expect(result.stderrLines.first?.hasSuffix(":harness_expect_fail:Expected one (1) == 2") == true)
    }

    @Test("ASSERT failure: 'Test terminated by assertion'")
    func assertFailure() throws {
        let result = try selftest("harness_assert")
        #expect(result.status == 1)
        #expect(result.stderrLines.last == "# harness_assert: Test terminated by assertion")
        #expect(!result.stdout.contains("unreachable"))
        #expect(result.stdoutLines.contains("# FAILED: 0 / 1 tests passed."))
    }

    @Test("SKIP: 'ok N name # SKIP reason', exit 0")
    func skip() throws {
        let result = try selftest("harness_skip")
        #expect(result.status == 0)
        #expect(result.stdoutLines.contains("#            OK  hmm.hmm_device_private.harness_skip"))
        #expect(result.stdoutLines.contains("ok 1 hmm.hmm_device_private.harness_skip # SKIP harness skip reason"))
        #expect(result.stderrLines == ["#      SKIP      harness skip reason"])
        #expect(result.stdoutLines.last == "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0")
        let unsupported = try selftest("harness_unsupported")
        #expect(unsupported.status == 0)
        #expect(unsupported.stdout.contains("ok 1 hmm.hmm_device_private.harness_unsupported # SKIP HMM_DMIRROR_READ_UNLOCKED"))
    }

    @Test("A crash is one failed case and the run goes on")
    func crash() throws {
        let result = try runDmirror(["run", "--backend", "sim", "--harness-selftest",
                                     "-t", "harness_crash", "-t", "harness_abort", "-t", "harness_exit", "-t", "harness_pass"])
        #expect(result.status == 1)
        #expect(result.stdoutLines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") } == [
            "ok 1 hmm.hmm_device_private.harness_pass",
            "not ok 2 hmm.hmm_device_private.harness_crash",
            "not ok 3 hmm.hmm_device_private.harness_abort",
            "not ok 4 hmm.hmm_device_private.harness_exit",
        ])
        #expect(result.stderrLines.contains("# harness_crash: Test terminated unexpectedly by signal 11"))
        #expect(result.stderrLines.contains("# harness_abort: Test terminated by assertion"))
        #expect(result.stderrLines.contains("# harness_exit: Test failed"))
        #expect(result.stdoutLines.last == "# Totals: pass:1 fail:3 xfail:0 xpass:0 skip:0 error:0")
    }

    @Test("A hang is killed at its timeout: 'Test terminated by timeout'")
    func timeout() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try selftest("harness_timeout")
        #expect(clock.now - start < .seconds(10))
        #expect(result.status == 1)
        #expect(result.stdoutLines.contains("harness: hanging"))
        #expect(result.stdoutLines.contains("not ok 1 hmm.hmm_device_private.harness_timeout"))
        #expect(result.stderrLines.last == "# harness_timeout: Test terminated by timeout")
    }

    @Test("hmm2 cases open two devices")
    func twoDevices() throws {
        let result = try selftest("harness_two_devices", fixture: "hmm2", variant: "hmm2_device_private")
        #expect(result.status == 0)
        #expect(result.stdoutLines.contains("ok 1 hmm2.hmm2_device_private.harness_two_devices"))
    }

    @Test("--format json: one document with each case's verdict, reason and output")
    func json() throws {
        let result = try runDmirror(["run", "--backend", "sim", "--harness-selftest", "--format", "json",
                                     "-t", "harness_pass", "-t", "harness_skip", "-t", "harness_assert", "-t", "harness_crash"])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect((object["backend"] as? [String: Any])?["name"] as? String == "sim")
        let cases = try #require(object["cases"] as? [[String: Any]])
        #expect(cases.map { $0["name"] as? String } == [
            "hmm.hmm_device_private.harness_pass", "hmm.hmm_device_private.harness_assert",
            "hmm.hmm_device_private.harness_skip", "hmm.hmm_device_private.harness_crash",
        ])
        #expect(cases.map { $0["verdict"] as? String } == ["pass", "fail", "skip", "fail"])
        #expect(cases[0]["output"] as? String == "harness: stdout line 1\n# a TH_LOG note\nharness: stdout line 2\n")
        #expect((cases[1]["reason"] as? String)?.hasPrefix("Test terminated by assertion: ") == true)
        #expect(cases[2]["reason"] as? String == "harness skip reason")
        #expect(cases[3]["reason"] as? String == "Test terminated unexpectedly by signal 11")
        #expect((cases[3]["output"] as? String)?.hasSuffix("# harness_crash: Test terminated unexpectedly by signal 11\n") == true)
        #expect((object["totals"] as? [String: Int]) == ["pass": 1, "fail": 2, "xfail": 0, "xpass": 0, "skip": 1, "error": 0])
    }
}
