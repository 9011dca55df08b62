import Harness
/// Cases whose C assertion fails on the reference kernel itself (Linux 7.3,
/// stock test_hmm), measured in the lab with the kernel's own hmm-tests.
///
/// dmirror's verdict must equal the C suite's, so on the kernel these cases
/// are `not ok` in both suites; and the simulator, which must answer as the
/// kernel does, reproduces the same failure at the same assertion. An `ok`
/// from the simulator here would mean it disagrees with the kernel.
public struct KernelFinding: Sendable {
    /// fixture.variant.test
    public let name: String
    /// Text the failing assertion prints (the expression and the value the kernel returns).
    public let assertion: String
    /// Why the kernel fails it.
    public let why: String
}

extension HMMSuite {
    /// The findings of Linux 7.3 (lib/test_hmm.c, mm/migrate_device.c).
    public static let kernelFindings: [KernelFinding] = [
        KernelFinding(
            name: "hmm.hmm_device_coherent.migrate_anon_huge_err",
            assertion: "Expected ret (-12) == 0",
            why: """
                A coherent device has one fixed 256 MiB SPM chunk, created at module load for \
                order-0 pages; a THP request finds no free device folio, and a second chunk over \
                the same range fails in memremap_pages() ("Conflicting mapping in same section"). \
                The THP therefore lands as 512 order-0 device pages, and MIGRATE_TO_SYS under \
                FAIL_ALLOC hits an order-0 allocation, which dmirror_devmem_fault_alloc_and_copy() \
                turns into -ENOMEM instead of the 4K fallback the test expects.
                """),
    ]

    /// The finding for `name`, if the reference kernel fails that case.
    public static func kernelFinding(for name: String) -> KernelFinding? {
        kernelFindings.first { $0.name == name }
    }

    /// What a report adds to each of these cases when it fails.
    public static var notes: CaseNotes {
        Dictionary(uniqueKeysWithValues: kernelFindings.map {
            ($0.name, "Linux 7.3 fails this case too (\($0.assertion)): a kernel finding, see README.md, The lab")
        })
    }
}
