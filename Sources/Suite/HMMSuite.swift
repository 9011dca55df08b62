import ABI
import Harness
import MachineInterface

/// The ported hmm-tests.c suite (Linux 7.3): 39 tests, 78 cases.
public enum HMMSuite {
    /// Every TEST_F of hmm-tests.c, in the C file's order.
    public static let tests: [TestDefinition] = [
        openClose,
        anonRead,
        anonReadProt,
        anonWrite,
        anonWriteProt,
        anonWriteChild,
        anonWriteChildShared,
        anonWriteHuge,
        anonWriteHugetlbfs,
        fileRead,
        fileWrite,
        migrate,
        migrateFilePrivate,
        migrateFault,
        migrateRelease,
        migrateShared,
        migrateMixed,
        migrateMultiple,
        anonReadMultiple,
        anonTeardown,
        mixedmap,
        snapshot,
        compound,
        doubleMap,
        exclusive,
        exclusiveMprotect,
        exclusiveCow,
        hmmGupTest,
        hmmCowInDevice,
        migrateAnonHugeEmpty,
        migrateAnonHugeZero,
        migrateAnonHugeFree,
        migrateAnonHugeFault,
        migratePartialUnmapFault,
        migrateRemapFault,
        migrateAnonHugeErr,
        migrateAnonHugeZeroErr,
        benchmarkThpMigration,
        userfaultfdRead,
    ]

    /// The kernel harness's run order: fixture hmm then hmm2; within a
    /// fixture each variant (private, then coherent); within a variant the
    /// fixture's tests in file order. 78 cases.
    public static let cases: [TestCase] = TestDefinition.cases(of: tests)

    /// dmirror's own cases, beyond the C suite (all on fixture hmm).
    public static let extraTests: [TestDefinition] = [
        prologueNpagesZero,
        prologueUnalignedAddr,
        prologueAddressWrap,
        prologueUnknownRequest,
        prologueFlagsZero,
        checkExclusiveFresh,
        migrateToSysEmpty,
    ]

    /// The C suite's cases that need `capability` (by their test or their variant), in run order.
    public static func caseNames(needing capability: MachineCapability) -> [String] {
        Fixture.allCases.flatMap { fixture in
            Variant.all(of: fixture).flatMap { variant in
                tests.filter { $0.fixture == fixture && (variant.needs.contains(capability) || $0.needs.contains(capability)) }
                    .map { "\(fixture.rawValue).\(variant.name).\($0.name)" }
            }
        }
    }

    /// `extraTests` in the same fixture/variant order as `cases`.
    public static let extraCases: [TestCase] = TestDefinition.cases(of: extraTests)
}
