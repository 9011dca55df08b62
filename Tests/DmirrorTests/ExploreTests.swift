@testable import Explore
import MachineInterface
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Schedule exploration, through the built executable (each schedule forks, and a
/// test process runs many threads: the exploring happens in a `dmirror` of its own).
@Suite("Explore")
struct ExploreTests {
    /// Each scenario held to its expectations: the stock model reports nothing (and
    /// the test_hmm finding is found), each bug variant's checker reports its bug.
    /// A smaller budget than CI's release run (1,000 random + every schedule with at
    /// most 2 preemptions), which `.ci/run` adds.
    @Test("each scenario meets its expectations", arguments: Catalogue.all.map(\.name))
    func expectations(_ scenario: String) throws {
        let output = try runDmirror(["explore", scenario, "--check", "--random", "120", "--preemptions", "1", "--limit", "1500"])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdoutLines.last == "every expectation met", "\(output.stdout)")
    }

    @Test("the same seed gives the same schedule and the same output, byte for byte")
    func determinism() throws {
        // A schedule in which the child's write, its exit and the parent's READ all happen
        // (others end in test_hmm's oops before the child runs).
        let arguments = ["explore", "fork-cow-device", "--seed", "2", "--permille", "50"]
        let first = try runDmirror(arguments)
        let second = try runDmirror(arguments)
        let timing: (String) -> Bool = { $0.contains("schedules/s") }
        #expect(first.status == 0)
        #expect(first.stdoutLines.filter { !timing($0) } == second.stdoutLines.filter { !timing($0) })
        #expect(first.stdoutLines.count > 5)
    }

    @Test("a printed schedule reproduces its outcome")
    func replay() throws {
        let explored = try runDmirror(["explore", "read-munmap", "--random", "40", "--preemptions", "1"])
        // Each outcome names the first schedule that gave it; running that one alone gives it again.
        let headers = explored.stdoutLines.enumerated().filter { $0.element.hasPrefix("  #") }
        #expect(headers.count >= 2, "\(explored.stdout)")
        for (index, header) in headers {
            guard let range = header.range(of: "first: ") else { continue }
            let schedule = String(header[range.upperBound...])
            let lines = explored.stdoutLines[(index + 1)...].prefix { $0.hasPrefix("      ") }
            let arguments = ["explore", "read-munmap"] + Self.arguments(schedule)
            let again = try runDmirror(arguments)
            let replayed = again.stdoutLines.drop { !$0.hasPrefix("  #1") }.dropFirst().prefix { $0.hasPrefix("      ") }
            #expect(Array(replayed) == Array(lines), "\(arguments)")
        }
    }

    /// "--seed 2 --permille 50" or "--schedule '0,1'" as arguments.
    static func arguments(_ schedule: String) -> [String] {
        schedule.split(separator: " ").map { String($0).replacingQuote() }
    }

    @Test("a bug variant's report takes lockdep's shape: both sites and the held locks")
    func lockdepShape() throws {
        let output = try runDmirror(["explore", "migrate-on-fault", "--sim-variant", "migrate-on-fault-nested-lock",
                                     "--schedule", ""])
        #expect(output.status == 1)
        let text = output.stdout
        #expect(text.contains("WARNING: possible recursive locking detected"))
        #expect(text.contains("is trying to acquire lock:"))
        #expect(text.contains("&mm->mmap_lock (read) at mirrorRange"))
        #expect(text.contains("but task is already holding lock:"))
        #expect(text.contains("&mm->mmap_lock (read) at migrateOnFaultToDevice"))
        #expect(text.contains("1 lock(s) held by task 1 (thread):"))
    }

    @Test("a deadlock report names each task, the locks it holds and what it waits for")
    func deadlockShape() throws {
        let output = try runDmirror(["explore", "migrate-read", "--sim-variant", "plain-notifier-device-lock", "--schedule", ""])
        #expect(output.status == 1)
        let text = output.stdout
        #expect(text.contains("deadlock: every task of the simulated kernel waits, none can run"))
        #expect(text.contains("waits for &mdevice->devlock, held by task 1 (thread)"))
        #expect(text.contains("#1: &mdevice->devlock at migrateToDevice"))
        #expect(text.contains("ended: deadlock"))
    }

    @Test("the self-invalidation report lists each invalidation's event and owner")
    func selfInvalidationShape() throws {
        let output = try runDmirror(["explore", "migrate-on-fault", "--sim-variant", "migrate-on-fault",
                                     "--sim-variant", "no-owner-filter", "--schedule", ""])
        #expect(output.status == 1)
        #expect(output.stdout.contains("times in a row, each time for invalidations it caused itself"))
        #expect(output.stdout.contains("MMU_NOTIFY_MIGRATE owner hmm_dmirror0 from collectAndUnmap"))
    }

    @Test("the JSON document carries outcomes and reports")
    func json() throws {
        let output = try runDmirror(["explore", "read-munmap", "--sim-variant", "no-read-retry", "--random", "60",
                                     "--preemptions", "0", "--format", "json"])
        #expect(output.status == 1)
        let text = output.stdout
        #expect(text.hasPrefix("{\"scenario\": \"read-munmap\""))
        #expect(text.contains("\"outcomes\": [{\"count\": "))
        #expect(text.contains("\"kind\": \"stale device mapping\""))
    }

    @Test("bad arguments are one line and exit 1")
    func badArguments() throws {
        for arguments in [["explore"], ["explore", "no-such-scenario"], ["explore", "read-munmap", "--schedule", "1,x"],
                          ["explore", "read-munmap", "--permille", "2000", "--seed", "1"],
                          ["explore", "--check", "--sim-variant", "no-read-retry"]] {
            let output = try runDmirror(arguments)
            #expect(output.status == 1, "\(arguments)")
            #expect(output.stderrLines.count == 1, "\(arguments): \(output.stderr)")
        }
    }

    @Test("the child channel keeps newlines, tabs and backslashes in reports")
    func channel() {
        let decoded = Self.roundTrip(outcome: ["T1: READ p0+1 -> ok"],
                                     reports: [CheckerReport(kind: "k\tind", text: "a\nb\\c\td")])
        #expect(decoded.outcome == ["T1: READ p0+1 -> ok"])
        #expect(decoded.reports == [CheckerReport(kind: "k\tind", text: "a\nb\\c\td")])
    }

    static func roundTrip(outcome: [String], reports: [CheckerReport]) -> (outcome: [String], reports: [CheckerReport]) {
        let text = ChildChannel.encode(outcome: outcome, reports: reports, decisions: [])
        let decoded = ChildChannel.decode(Array(text.utf8))
        return (decoded.outcome, decoded.reports)
    }

    @Test("schedules parse from and print to the command line")
    func scheduleText() {
        #expect(ScheduleText.parse("") == [])
        #expect(ScheduleText.parse("0,2,1") == [0, 2, 1])
        #expect(ScheduleText.parse("0,,1") == nil)
        #expect(ScheduleText.parse("-1") == nil)
        #expect(ScheduleText.describe(.replay([1, 0])) == "--schedule '1,0'")
        #expect(ScheduleText.describe(.random(seed: 3, preemptPermille: 50)) == "--seed 3 --permille 50")
    }
}

extension String {
    /// The shell's quotes off a word ('0,1' → 0,1).
    func replacingQuote() -> String { filter { $0 != "'" } }
}
