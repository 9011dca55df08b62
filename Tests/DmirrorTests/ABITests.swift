import Testing
@testable import ABI
import MachineInterface

/// The ABI facts, checked against values computed here independently of the
/// C header: the x86_64 ioctl encoding is dir<<30 | size<<16 | type<<8 | nr.
@Suite("ABI")
struct ABITests {
    static func iowr(_ nr: UInt) -> UInt { (3 << 30) | (40 << 16) | (UInt(Character("H").asciiValue!) << 8) | nr }

    @Test("struct hmm_dmirror_cmd is 40 bytes, 8-aligned, five u64 fields in order")
    func commandLayout() {
        #expect(MemoryLayout<DmirrorCmd>.size == 40)
        #expect(MemoryLayout<DmirrorCmd>.stride == 40)
        #expect(MemoryLayout<DmirrorCmd>.alignment == 8)
        #expect(MemoryLayout<DmirrorCmd>.offset(of: \.addr) == 0)
        #expect(MemoryLayout<DmirrorCmd>.offset(of: \.ptr) == 8)
        #expect(MemoryLayout<DmirrorCmd>.offset(of: \.npages) == 16)
        #expect(MemoryLayout<DmirrorCmd>.offset(of: \.cpages) == 24)
        #expect(MemoryLayout<DmirrorCmd>.offset(of: \.faults) == 32)
    }

    @Test("Linux 7.3 request numbers are 0xC0284800 + nr for nr 0x00...0x09")
    func newestRequests() {
        let expected: [(DmirrorCommand, UInt)] = [
            (.read, 0x00), (.write, 0x01), (.migrateToDevice, 0x02), (.migrateToSystem, 0x03),
            (.snapshot, 0x04), (.exclusive, 0x05), (.checkExclusive, 0x06), (.release, 0x07),
            (.flags, 0x08), (.readUnlocked, 0x09),
        ]
        for (command, nr) in expected {
            #expect(ABIGeneration.v7_3.request(for: command) == Self.iowr(nr), "\(command)")
            #expect(ABIGeneration.v7_3.request(for: command) == 0xC028_4800 + nr)
            #expect(ABIGeneration.v7_3.command(forRequest: Self.iowr(nr)) == command)
        }
        #expect(Self.iowr(0) == 3_223_865_344)
    }

    @Test("v5.7-v5.19 numbering: MIGRATE 0x02, SNAPSHOT 0x03, EXCLUSIVE 0x04, CHECK_EXCLUSIVE 0x05")
    func oldRequests() {
        #expect(ABIGeneration.v5_14.request(for: .migrateToDevice) == 0xC028_4802)
        #expect(ABIGeneration.v5_14.request(for: .snapshot) == 0xC028_4803)
        #expect(ABIGeneration.v5_14.request(for: .exclusive) == 0xC028_4804)
        #expect(ABIGeneration.v5_14.request(for: .checkExclusive) == 0xC028_4805)
        #expect(ABIGeneration.v5_14.request(for: .migrateToSystem) == nil)
        #expect(ABIGeneration.v5_7.request(for: .exclusive) == nil)
        #expect(ABIGeneration.v5_7.request(for: .snapshot) == 0xC028_4803)
    }

    @Test("each generation adds its commands: RELEASE 6.1, FLAGS 6.18, READ_UNLOCKED 7.3")
    func generationGrowth() {
        #expect(ABIGeneration.v6_0.request(for: .release) == nil)
        #expect(ABIGeneration.v6_1.request(for: .release) == 0xC028_4807)
        #expect(ABIGeneration.v6_1.request(for: .flags) == nil)
        #expect(ABIGeneration.v6_18.request(for: .flags) == 0xC028_4808)
        #expect(ABIGeneration.v6_18.request(for: .readUnlocked) == nil)
        #expect(ABIGeneration.v7_3.request(for: .readUnlocked) == 0xC028_4809)
        #expect(ABIGeneration.v6_0.request(for: .snapshot) == 0xC028_4804)
    }

    @Test("gup_flags follow the running kernel: FOLL_LONGTERM is 0x10000 before 6.2 (0x100 was FOLL_HWPOISON), 0x100 after")
    func gupFlagsPerKernel() {
        let flags: GupFlags = [.write, .longterm]
        #expect(flags.kernelValue(on: KernelVersion(6, 1, 176)) == 0x10001)
        #expect(flags.kernelValue(on: KernelVersion(6, 2)) == 0x101)
        #expect(flags.kernelValue(on: KernelVersion(7, 3, 4)) == 0x101)
        #expect(flags.kernelValue(on: nil) == 0x101)
        #expect(GupFlags.write.kernelValue(on: KernelVersion(5, 7)) == 0x1)
    }

    @Test("the generation is chosen from uname -r", arguments: [
        ("7.3.4-amd64", ABIGeneration.v7_3), ("7.10.0", .v7_3), ("8.0.1", .v7_3),
        ("6.18.44-fc-v595", .v6_18), ("7.2.0-rc3", .v6_18), ("6.17.9", .v6_1), ("6.1.0-28-amd64", .v6_1),
        ("6.0.19", .v6_0), ("5.19.17", .v5_14), ("5.14.0-503.el9.x86_64", .v5_14), ("5.10.0-33-amd64", .v5_7),
    ])
    func generationFromRelease(release: String, expected: ABIGeneration) {
        #expect(ABIGeneration(kernelRelease: release) == expected)
    }

    @Test("each generation's first release is its raw value, and generations order by it")
    func firstReleases() {
        for generation in ABIGeneration.allCases {
            let parts = generation.rawValue.split(separator: ".").compactMap { Int($0) }
            #expect(parts == [generation.firstRelease.major, generation.firstRelease.minor], "\(generation)")
        }
        #expect(ABIGeneration.allCases == ABIGeneration.allCases.sorted())
    }

    @Test("releases before v5.7 have no test_hmm", arguments: ["5.6.19", "4.19.0", "garbage", ""])
    func noGeneration(release: String) {
        #expect(ABIGeneration(kernelRelease: release) == nil)
    }

    @Test("snapshot byte values")
    func snapshotValues() {
        #expect(SnapshotEntry.error.rawValue == 0xFF)
        #expect(SnapshotEntry.none.rawValue == 0x00)
        #expect(SnapshotEntry.read.rawValue == 0x01)
        #expect(SnapshotEntry.write.rawValue == 0x02)
        #expect(SnapshotEntry.Level.pmd.bits == 0x04)
        #expect(SnapshotEntry.Level.pud.bits == 0x08)
        #expect(SnapshotEntry.Kind.zero.bits == 0x10)
        #expect(SnapshotEntry.Kind.devicePrivateLocal.bits == 0x20)
        #expect(SnapshotEntry.Kind.devicePrivateRemote.bits == 0x30)
        #expect(SnapshotEntry.Kind.deviceCoherentLocal.bits == 0x40)
        #expect(SnapshotEntry.Kind.deviceCoherentRemote.bits == 0x50)
        #expect(DmirrorFlags.failAlloc.rawValue == 1)
    }

    @Test("snapshot bytes decode into kind, access and level")
    func snapshotDecoding() {
        let entry = SnapshotEntry(rawValue: 0x26)
        #expect(entry.kind == .devicePrivateLocal)
        #expect(entry.access == .write)
        #expect(entry.level == .pmd)
        #expect(entry == SnapshotEntry(kind: .devicePrivateLocal, access: .write, level: .pmd))
        #expect(SnapshotEntry(rawValue: 0x11) == SnapshotEntry(kind: .zero, access: .read))
        #expect(SnapshotEntry(rawValue: 0x52).kind == .deviceCoherentRemote)
        #expect(SnapshotEntry(rawValue: 0x09).level == .pud)
        #expect(SnapshotEntry.error.kind == nil)
        #expect(SnapshotEntry(rawValue: 0x60).kind == nil)
        #expect(SnapshotEntry(rawValue: 0x26).description == "private-local|write|pmd")
    }

    @Test("errors name the command and what to do")
    func errorText() {
        #expect(DmirrorError.failed(.migrateToDevice, .ENOENT).description.hasPrefix("HMM_DMIRROR_MIGRATE_TO_DEV failed: ENOENT"))
        #expect(DmirrorError.unsupported(.flags, .v6_1).description.contains("--abi"))
        #expect(Errno.EINVAL.name == "EINVAL")
        #expect(Errno.EINVAL.named == "EINVAL (Invalid argument)")
        #expect(Errno(rawValue: 4095).name == "errno 4095")
    }

    @Test("Linux UAPI values come from the system headers (x86_64 values)")
    func uapiValues() {
        #expect(MapFlags.shared.rawValue == 0x01 && MapFlags.private.rawValue == 0x02)
        #expect(MapFlags.fixed.rawValue == 0x10 && MapFlags.anonymous.rawValue == 0x20)
        #expect(MapFlags.hugetlb.rawValue == 0x40000 && MapFlags.fixedNoReplace.rawValue == 0x100000)
        #expect(Advice.dontNeed.rawValue == 4 && Advice.free.rawValue == 8)
        #expect(Advice.hugePage.rawValue == 14 && Advice.noHugePage.rawValue == 15 && Advice.collapse.rawValue == 25)
        #expect(RemapFlags.mayMove.rawValue == 1 && RemapFlags.fixed.rawValue == 2 && RemapFlags.dontUnmap.rawValue == 4)
        #expect(GupTestOperation.gupBasicTest.rawValue == 4 && GupFlags.longterm.rawValue == 0x100)
        #expect(ExitStatus(waitStatus: 0x0100) == .exited(1))
        #expect(ExitStatus(waitStatus: 9) == .signaled(.kill))
    }
}
