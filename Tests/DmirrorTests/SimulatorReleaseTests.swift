import ABI
import Testing
@testable import Scenario
@testable import Simulator

/// The simulator follows the release it models where the kernel changed: device THP
/// migration came with the series that added FLAGS (6.18); before it a PMD-mapped THP
/// is split (split_folio()) and moves as 512 small device pages, and a PTE-mapped THP
/// is not collected at all. The lab's 6.1 and 6.12 cells recorded both.
@Suite("Simulator: behaviour by release")
struct SimulatorReleaseTests {
    static func lines(_ text: String, release: KernelVersion) throws -> [String] {
        let scenario = try ScenarioParser.parse(text, file: "t.scn")
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let collected = Lines()
        let kernel = SimKernel(configuration: SimConfiguration(release: release))
        ScenarioRunner(scenario) { collected.all.append($0) }.run(on: kernel.spawnProcess())
        return collected.all.filter { !$0.hasPrefix("? ") }.map { String($0.split(separator: " => ").last ?? "") }
    }

    /// A PMD-mapped THP migrated to device-private memory, then snapshotted.
    static let pmdMapped = """
        open d 0
        mmap a 512 anon align=pmd hugepage
        store a seq
        migrate_to_dev d a
        snapshot d a
        """

    @Test("6.12: a PMD-mapped THP moves as small device pages (snapshot 22, no PMD bit); 7.3: as one (26)")
    func pmdMappedTHP() throws {
        let old = try Self.lines(Self.pmdMapped, release: KernelVersion(6, 12, 117))
        let new = try Self.lines(Self.pmdMapped, release: KernelVersion(7, 3, 4))
        #expect(old[3].hasPrefix("ok cpages=512"), "\(old)")
        #expect(new[3].hasPrefix("ok cpages=512"), "\(new)")
        #expect(old[4].contains("snapshot=22x512"), "\(old)")
        #expect(new[4].contains("snapshot=26x512"), "\(new)")
        // The data read back is the same either way.
        #expect(old[3].contains("data=") && old[3].split(separator: " ").last == new[3].split(separator: " ").last)
    }

    /// A THP moved by mremap to an address that is not PMD-aligned stays one folio, mapped by PTEs.
    static let pteMapped = """
        open d 0
        mmap a 512 anon align=pmd hugepage
        mmap x 1024 anon
        store a seq
        mremap a b 512 maymove to=x[128]
        migrate_to_dev d b
        """

    @Test("6.1: a PTE-mapped THP is not collected (the read-back is ENOENT); 7.3 migrates it")
    func pteMappedTHP() throws {
        let old = try Self.lines(Self.pteMapped, release: KernelVersion(6, 1, 176))
        let new = try Self.lines(Self.pteMapped, release: KernelVersion(7, 3, 4))
        #expect(old[4] == "ok" && new[4] == "ok", "\(old) \(new)")
        #expect(old[5].hasPrefix("errno=ENOENT"), "\(old)")
        #expect(new[5].hasPrefix("ok cpages=512"), "\(new)")
    }

    @Test("the release decides, not a forced ABI: 6.12 behaviour with the 7.3 numbering")
    func releaseNotABI() throws {
        let kernel = SimKernel(configuration: SimConfiguration(release: KernelVersion(6, 12), abi: .v7_3))
        #expect(!kernel.migratesDeviceTHP)
        #expect(SimKernel(configuration: SimConfiguration(release: KernelVersion(6, 18))).migratesDeviceTHP)
        #expect(ABIGeneration.v6_18.migratesDeviceTHP && !ABIGeneration.v6_1.migratesDeviceTHP)
    }
}
