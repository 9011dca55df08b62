import Foundation
import Synchronization
import Testing
@testable import Harness
@testable import Suite
#if canImport(Glibc)
import Glibc
#endif

/// `dmirror run --jobs N`: cases run concurrently on the simulator, and the
/// report is the sequential one byte for byte.
@Suite("Harness: concurrent cases (--jobs)")
struct HarnessParallelTests {
    /// The self-test cases whose output is the same on every run (a crash's Swift
    /// backtrace carries addresses and its own timing, so crash and abort are left out).
    static let deterministic = ["-T", "harness_crash", "-T", "harness_abort"]

    func selftestRun(_ jobs: Int, _ extra: [String], mergingStderr: Bool = false) throws -> ProcessOutput {
        try runDmirror(["run", "--backend", "sim", "--harness-selftest", "-j", String(jobs)] + extra,
                       mergingStderr: mergingStderr)
    }

    @Test("-j 2 prints what -j 1 prints, byte for byte, on stdout and on stderr")
    func sameReportSeparateStreams() throws {
        let sequential = try selftestRun(1, Self.deterministic)
        let concurrent = try selftestRun(2, Self.deterministic)
        let many = try selftestRun(8, Self.deterministic)
        #expect(sequential.status == 1)
        #expect(concurrent.status == sequential.status)
        #expect(concurrent.stdout == sequential.stdout)
        #expect(concurrent.stderr == sequential.stderr)
        #expect(many.stdout == sequential.stdout)
        #expect(many.stderr == sequential.stderr)
        // Pass, EXPECT and ASSERT failures, skips, a timeout and an odd exit status are all in it.
        #expect(sequential.stdoutLines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }.count == 8)
        #expect(sequential.stdoutLines.last == "# Totals: pass:2 fail:4 xfail:0 xpass:0 skip:2 error:0")
        // The case's own lines stay between its RUN and OK lines.
        let lines = concurrent.stdoutLines
        let run = try #require(lines.firstIndex(of: "#  RUN           hmm.hmm_device_private.harness_pass ..."))
        #expect(Array(lines[(run + 1)...].prefix(3)) == ["harness: stdout line 1", "harness: stdout line 2",
                                                          "#            OK  hmm.hmm_device_private.harness_pass"])
    }

    @Test("With stdout and stderr in one pipe (2>&1), -j 2 interleaves them exactly as -j 1 does")
    func sameReportMerged() throws {
        let sequential = try selftestRun(1, Self.deterministic, mergingStderr: true)
        let concurrent = try selftestRun(2, Self.deterministic, mergingStderr: true)
        #expect(concurrent.status == sequential.status)
        #expect(concurrent.stdout == sequential.stdout)
        let lines = concurrent.stdoutLines
        let run = try #require(lines.firstIndex(of: "#  RUN           hmm.hmm_device_private.harness_pass ..."))
        #expect(Array(lines[(run + 1)...].prefix(4)) == ["harness: stdout line 1", "# a TH_LOG note", "harness: stdout line 2",
                                                          "#            OK  hmm.hmm_device_private.harness_pass"])
    }

    @Test("Under -j 2 a crash and a timeout are still one failed case each, reported in order")
    func crashAndTimeout() throws {
        let filters = ["-t", "harness_crash", "-t", "harness_timeout", "-t", "harness_pass", "-t", "harness_abort"]
        let clock = ContinuousClock()
        let start = clock.now
        let concurrent = try selftestRun(2, filters)
        #expect(clock.now - start < .seconds(10))
        let sequential = try selftestRun(1, filters)
        #expect(concurrent.status == 1)
        #expect(concurrent.stdout == sequential.stdout)
        #expect(concurrent.stdoutLines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") } == [
            "ok 1 hmm.hmm_device_private.harness_pass",
            "not ok 2 hmm.hmm_device_private.harness_crash",
            "not ok 3 hmm.hmm_device_private.harness_abort",
            "not ok 4 hmm.hmm_device_private.harness_timeout",
        ])
        #expect(concurrent.stdoutLines.contains("harness: about to crash"))
        #expect(concurrent.stdoutLines.contains("harness: hanging"))
        #expect(concurrent.stdoutLines.last == "# Totals: pass:1 fail:3 xfail:0 xpass:0 skip:0 error:0")
        let diagnostics = concurrent.stderrLines.filter { $0.hasPrefix("# harness_") }
        #expect(diagnostics == [
            "# harness_crash: Test terminated unexpectedly by signal 11",
            "# harness_abort: Test terminated by assertion",
            "# harness_timeout: Test terminated by timeout",
        ])
    }

    @Test("--format json with -j 2: the -j 1 document, durations aside")
    func json() throws {
        func document(_ jobs: Int) throws -> String {
            let result = try selftestRun(jobs, ["--format", "json"] + Self.deterministic)
            #expect(result.status == 1)
            return result.stdout.replacingOccurrences(of: #""duration": [0-9.]+"#, with: #""duration": 0"#,
                                                      options: .regularExpression)
        }
        let sequential = try document(1)
        #expect(try document(2) == sequential)
        #expect(try JSONSerialization.jsonObject(with: Data(sequential.utf8)) is [String: Any])
    }

    @Test("--backend kernel -j 2 is refused before any driver probe: one line, exit 1")
    func kernelRefusesJobs() throws {
        for arguments in [["run", "--backend", "kernel", "-j", "2"], ["run", "--backend", "kernel", "--jobs=3", "-t", "migrate"]] {
            let result = try runDmirror(arguments)
            #expect(result.status == 1)
            #expect(result.stdout.isEmpty)
            #expect(result.stderrLines.count == 1)
            #expect(result.stderrLines.first?.contains("one case at a time") == true)
        }
        let zero = try runDmirror(["run", "--backend", "sim", "-j", "0"])
        #expect(zero.status == 1)
        #expect(zero.stdout.isEmpty)
    }

    @Test("--backend kernel -j 1 is accepted (then exits 4 without test_hmm)",
          .enabled(if: !DmirrorExecutable.kernelDriverAvailable, "test_hmm is loaded here"))
    func kernelOneJob() throws {
        let result = try runDmirror(["run", "--backend", "kernel", "-j", "1"])
        #expect(result.status == 4)
        #expect(result.stderrLines.first?.contains("test_hmm") == true)
    }

    @Test("-j does not disturb the filters' order")
    func jobsAndFilters() throws {
        let result = try runDmirror(["run", "--backend", "sim", "-j", "2", "-T", "migrate", "-v", "hmm2_device_private",
                                     "--jobs", "2", "-j2"])
        #expect(result.stdoutLines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") } == [
            "ok 1 hmm2.hmm2_device_private.migrate_mixed",
            "ok 2 hmm2.hmm2_device_private.snapshot",
            "ok 3 hmm2.hmm2_device_private.double_map",
        ])
    }

    @Test("SIGTERM during a -j 2 run kills every running case's process group")
    func interruptKillsAllGroups() throws {
        let harness = try spawnQuietly(["run", "--backend", "sim", "-j", "2", "-t", "benchmark_thp_migration"])
        var cases: [pid_t] = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while cases.count < 2 && clock.now < deadline {
            usleep(20_000)
            cases = children(of: harness)
        }
        #expect(cases.count == 2, "two benchmark cases run at once")
        kill(harness, SIGTERM)
        var status: Int32 = 0
        while waitpid(harness, &status, 0) < 0 && errno == EINTR {}
        #expect(status & 0x7f == SIGTERM, "the harness dies of the signal")
        // Killed, they are reparented and reaped: gone within a moment.
        let gone = clock.now + .seconds(5)
        while cases.contains(where: { kill($0, 0) == 0 }) && clock.now < gone { usleep(20_000) }
        #expect(!cases.contains { kill($0, 0) == 0 }, "no case process outlives the harness")
    }

    // MARK: The runner's limits

    @Test("SuiteRunner uses at most one worker per case, and none without cases")
    func runnerEdges() {
        let cases = HarnessFixtures.cases(["open_close"], variants: [.hmmDevicePrivate])
        let launcher = CaseLauncher { fatalError("no case runs here") }
        let runner = SuiteRunner(launcher: launcher, reporter: TAPReporter(sink: MemorySink()), jobs: 16)
        #expect(runner.workerCount(for: RunPlan(cases: cases)) == 1)
        #expect(runner.workerCount(for: RunPlan(cases: [])) == 0)
        let empty = MemorySink()
        let totals = SuiteRunner(launcher: launcher, reporter: TAPReporter(sink: empty), jobs: 4)
            .run(RunPlan(cases: []), backend: BackendInfo(name: "sim", detail: "d", abi: "7.3"))
        #expect(totals.total == 0)
        #expect(empty.stdoutLines.last == "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0")
    }
}

/// Starts `dmirror arguments...` with its output discarded; returns its pid.
private func spawnQuietly(_ arguments: [String]) throws -> pid_t {
    guard let executable = DmirrorExecutable.path else { throw SpawnError.noExecutable }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd: Int32 in [0, 1, 2] {
        posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
    }
    // No blocked signals and default dispositions, whatever the test runner's thread has.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard rc == 0 else { throw SpawnError.spawn(rc) }
    return pid
}

/// The processes whose parent is `parent` (from /proc/<pid>/stat).
private func children(of parent: pid_t) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry -> pid_t? in
        guard let pid = pid_t(entry),
              let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // "pid (comm) state ppid ..."
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
    }
}
