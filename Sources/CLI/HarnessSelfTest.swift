import ABI
import Harness
import MachineInterface
import Suite
import Syscalls

/// Cases that exercise the harness itself: every way a case can end.
/// Hidden behind `dmirror run --harness-selftest`; the package's tests use
/// them to check isolation, timeouts and verdict passing end to end.
enum HarnessSelfTest {
    static let tests: [TestDefinition] = [
        TestDefinition(.hmm, "harness_pass") { context in
            print("harness: stdout line 1")
            context.note("a TH_LOG note")
            print("harness: stdout line 2")
        },
        TestDefinition(.hmm, "harness_expect_fail") { context in
            context.expectEqual(1, 2, "one")
            print("harness: still running after EXPECT")
        },
        TestDefinition(.hmm, "harness_assert") { context in
            try context.assertEqual(1, 2, "one")
            print("harness: unreachable")
        },
        TestDefinition(.hmm, "harness_skip") { context in
            throw context.skip("harness skip reason")
        },
        TestDefinition(.hmm, "harness_unsupported") { context in
            throw DmirrorError.unsupported(.readUnlocked, .v6_1)
        },
        TestDefinition(.hmm, "harness_crash") { _ in
            print("harness: about to crash")
            let bad = UnsafeMutablePointer<Int>(bitPattern: 8)
            bad?.pointee = 1
        },
        TestDefinition(.hmm, "harness_abort") { _ in
            Sys.die(of: .abort)
        },
        TestDefinition(.hmm, "harness_timeout", timeoutSeconds: 1) { _ in
            print("harness: hanging")
            while true { Sys.sleep(nanoseconds: 60_000_000_000) }
        },
        TestDefinition(.hmm, "harness_exit") { _ in
            Sys.exit(7)
        },
        TestDefinition(.hmm2, "harness_two_devices") { context in
            try context.assertEqual(context.devices.count, 2, "devices")
        },
    ]

    /// Each test in the private variant of its fixture.
    static let cases: [TestCase] = tests.map {
        $0.testCase(in: $0.fixture == .hmm ? .hmmDevicePrivate : .hmm2DevicePrivate)
    }
}
