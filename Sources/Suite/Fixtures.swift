import ABI
import Harness
import MachineInterface

/// The kernel suite's fixtures (FIXTURE(hmm), FIXTURE(hmm2)).
public enum Fixture: String, Sendable, CaseIterable {
    /// One device file: `fd`.
    case hmm
    /// Two device files of the same kind: `fd0`, `fd1`.
    case hmm2
}

/// A FIXTURE_VARIANT_ADD: which device numbers a fixture opens.
public struct Variant: Sendable, Hashable {
    public let fixture: Fixture
    /// The kernel's variant name, e.g. "hmm_device_private".
    public let name: String
    /// The /dev/hmm_dmirrorN units opened by setup (one for hmm, two for hmm2).
    public let devices: [Int]

    /// hmm_is_coherent_type(): units 2 and 3 are device-coherent.
    public var isCoherent: Bool { devices[0] >= 2 }

    /// What the variant's setup needs: its devices.
    public var needs: Set<MachineCapability> {
        var needs: Set<MachineCapability> = [.driver]
        if isCoherent { needs.insert(.coherentDevices) }
        if devices.count > 1 { needs.insert(.secondDevice) }
        return needs
    }

    public static let hmmDevicePrivate = Variant(fixture: .hmm, name: "hmm_device_private", devices: [0])
    public static let hmmDeviceCoherent = Variant(fixture: .hmm, name: "hmm_device_coherent", devices: [2])
    public static let hmm2DevicePrivate = Variant(fixture: .hmm2, name: "hmm2_device_private", devices: [0, 1])
    public static let hmm2DeviceCoherent = Variant(fixture: .hmm2, name: "hmm2_device_coherent", devices: [2, 3])

    /// The variants of `fixture`, in the kernel's order.
    public static func all(of fixture: Fixture) -> [Variant] {
        switch fixture {
        case .hmm: [.hmmDevicePrivate, .hmmDeviceCoherent]
        case .hmm2: [.hmm2DevicePrivate, .hmm2DeviceCoherent]
        }
    }
}

/// One TEST_F of hmm-tests.c, written once against `Machine`.
public struct TestDefinition: Sendable {
    public let fixture: Fixture
    /// The test's name in hmm-tests.c, e.g. "anon_read".
    public let name: String
    /// TEST_F_TIMEOUT's value; 30 s (TEST_TIMEOUT_DEFAULT) otherwise.
    public let timeoutSeconds: Int
    /// A benchmark prints measurements; `swift test` may leave it out of its default path.
    public let isBenchmark: Bool
    /// What the test needs beyond its variant's devices (it skips, or cannot pass, without it).
    public let needs: Set<MachineCapability>
    public let body: @Sendable (TestContext) throws -> Void

    public init(_ fixture: Fixture, _ name: String, timeoutSeconds: Int = 30, isBenchmark: Bool = false,
                needs: Set<MachineCapability> = [], body: @escaping @Sendable (TestContext) throws -> Void) {
        self.fixture = fixture
        self.name = name
        self.timeoutSeconds = timeoutSeconds
        self.isBenchmark = isBenchmark
        self.needs = needs
        self.body = body
    }

    /// The runnable case of this test in `variant`, named `fixture.variant.test` as the kernel harness names it.
    public func testCase(in variant: Variant) -> TestCase {
        TestCase(name: CaseName(fixture: fixture.rawValue, variant: variant.name, test: name),
                 timeoutSeconds: timeoutSeconds, isBenchmark: isBenchmark) { machine, log in
            FixtureRun(test: self, variant: variant).execute(on: machine, log: log)
        }
    }

    /// Every variant of the fixtures of `tests`, in the kernel harness's run
    /// order: fixture hmm then hmm2; within a fixture each variant (private,
    /// then coherent); within a variant the fixture's tests in file order.
    public static func cases(of tests: [TestDefinition]) -> [TestCase] {
        Fixture.allCases.flatMap { fixture in
            Variant.all(of: fixture).flatMap { variant in
                tests.filter { $0.fixture == fixture }.map { $0.testCase(in: variant) }
            }
        }
    }
}

/// The fixture state a test body sees (the C suite's `self` and `variant`),
/// with kselftest_harness.h's assertions from `CaseContext`.
public final class TestContext: CaseContext, @unchecked Sendable {
    public let machine: any Machine
    public let variant: Variant
    /// self->page_size, self->page_shift.
    public let pageSize: Int
    public let pageShift: Int

    /// FIXTURE(hmm): the one device file.
    public var fd: MirrorDevice { devices[0] }
    /// FIXTURE(hmm2): the two device files.
    public var fd0: MirrorDevice { devices[0] }
    public var fd1: MirrorDevice { devices[1] }
    /// Devices opened by setup, in `variant.devices` order.
    public internal(set) var devices: [MirrorDevice] = []

    init(machine: any Machine, variant: Variant, testName: String, log: @escaping @Sendable (String) -> Void) {
        self.machine = machine
        self.variant = variant
        pageSize = machine.pageSize
        pageShift = machine.pageSize.trailingZeroBitCount
        super.init(testName: testName, log: log)
    }

    /// hmm_is_coherent_type(variant->device_number).
    public var isCoherent: Bool { variant.isCoherent }
}
