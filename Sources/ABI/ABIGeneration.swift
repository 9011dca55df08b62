import CDmirror

/// A generation of the dmirror ioctl numbering.
///
/// The request numbers are not stable across kernels: v6.0 inserted
/// MIGRATE_TO_SYS at 0x03 and shifted SNAPSHOT/EXCLUSIVE/CHECK_EXCLUSIVE up
/// by one; 6.1 added RELEASE, 6.18 FLAGS and 7.3 READ_UNLOCKED. The numbers
/// themselves come from the C header (Module/include/dmirror_abi.h); this
/// type says which exist in which generation.
public enum ABIGeneration: String, CaseIterable, Sendable, Comparable, CustomStringConvertible {
    /// v5.7 to v5.13: READ, WRITE, MIGRATE (0x02), SNAPSHOT (0x03).
    case v5_7 = "5.7"
    /// v5.14 to v5.19: adds EXCLUSIVE (0x04) and CHECK_EXCLUSIVE (0x05).
    case v5_14 = "5.14"
    /// v6.0: MIGRATE_TO_DEV/TO_SYS (0x02/0x03), SNAPSHOT 0x04, EXCLUSIVE 0x05, CHECK_EXCLUSIVE 0x06.
    case v6_0 = "6.0"
    /// v6.1 to 6.17: adds RELEASE (0x07).
    case v6_1 = "6.1"
    /// 6.18 to 7.2: adds FLAGS (0x08).
    case v6_18 = "6.18"
    /// 7.3 and later: adds READ_UNLOCKED (0x09).
    case v7_3 = "7.3"

    /// The newest generation: what the simulator speaks unless told otherwise.
    public static let newest: ABIGeneration = .v7_3

    public var description: String { "Linux \(rawValue) ABI" }

    /// (major, minor) of the first release of this generation (the raw value, as numbers).
    public var firstRelease: (major: Int, minor: Int) {
        switch self {
        case .v5_7: (5, 7)
        case .v5_14: (5, 14)
        case .v6_0: (6, 0)
        case .v6_1: (6, 1)
        case .v6_18: (6, 18)
        case .v7_3: (7, 3)
        }
    }

    // Every ioctl asks (`number(for:)`), so the comparison is two tuples, not two parses.
    public static func < (a: ABIGeneration, b: ABIGeneration) -> Bool { a.firstRelease < b.firstRelease }

    /// Whether device memory takes THPs whole: MIGRATE_VMA_SELECT_COMPOUND and the
    /// zone-device THP folios came with the series that added FLAGS (6.18). Before it,
    /// migrate_vma_collect_pmd() splits a PMD-mapped THP with split_folio() and skips a
    /// PTE-mapped one ("FIXME support THP"), and test_hmm allocates order-0 device pages only.
    public var migratesDeviceTHP: Bool { self >= .v6_18 }

    /// The generation a kernel of this `uname -r` release speaks, e.g. "7.3.4-amd64" → `.v7_3`.
    /// Nil for releases older than v5.7 (no test_hmm) or that cannot be parsed.
    public init?(kernelRelease: String) {
        guard let version = KernelVersion(release: kernelRelease) else { return nil }
        self.init(version)
    }

    /// The generation of a kernel version; nil before v5.7.
    public init?(_ version: KernelVersion) {
        guard let match = ABIGeneration.allCases.last(where: { $0.firstRelease <= (version.major, version.minor) }) else {
            return nil
        }
        self = match
    }

    /// The ioctl request number `command` has in this generation, or nil if the command does not exist yet
    /// (a proposed command exists in none: see `proposedRequest(for:)`).
    public func request(for command: DmirrorCommand) -> UInt? {
        number(for: command).map(ABIGeneration.ioctlRequest(nr:))
    }

    /// The request a proposed command would have if its series were applied to 7.3;
    /// nil for a released command.
    public static func proposedRequest(for command: DmirrorCommand) -> UInt? {
        guard command.isProposed else { return nil }
        return ioctlRequest(nr: command.number)
    }

    /// The `nr` byte of `_IOWR('H', nr, struct hmm_dmirror_cmd)` for `command`.
    public func number(for command: DmirrorCommand) -> UInt8? {
        guard let introduced = command.introduced, self >= introduced else { return nil }
        if self < .v6_0 {
            switch command {
            case .migrateToDevice: return UInt8(DMIRROR_NR_V5_MIGRATE)
            case .snapshot: return UInt8(DMIRROR_NR_V5_SNAPSHOT)
            case .exclusive: return UInt8(DMIRROR_NR_V5_EXCLUSIVE)
            case .checkExclusive: return UInt8(DMIRROR_NR_V5_CHECK_EXCLUSIVE)
            default: break
            }
        }
        return command.number
    }

    /// `_IOWR('H', nr, struct hmm_dmirror_cmd)` for any `nr`, from the C header.
    public static func ioctlRequest(nr: UInt8) -> UInt { UInt(dmirror_iowr(UInt32(nr))) }

    /// The command a request number means in this generation (the inverse of `request(for:)`),
    /// or the proposed command it would be.
    public func command(forRequest request: UInt) -> DmirrorCommand? {
        DmirrorCommand.allCases.first { self.request(for: $0) == request || ABIGeneration.proposedRequest(for: $0) == request }
    }
}

extension DmirrorCommand {
    /// The generation that added the command; nil for a proposed one.
    public var introduced: ABIGeneration? {
        switch self {
        case .migrateOnFaultToDevice: nil
        case .read, .write, .migrateToDevice, .snapshot: .v5_7
        case .exclusive, .checkExclusive: .v5_14
        case .migrateToSystem: .v6_0
        case .release: .v6_1
        case .flags: .v6_18
        case .readUnlocked: .v7_3
        }
    }

    /// The Linux 7.3 `nr` (lib/test_hmm_uapi.h), from the C header.
    var number: UInt8 {
        let nr: Int = switch self {
        case .read: DMIRROR_NR_READ
        case .write: DMIRROR_NR_WRITE
        case .migrateToDevice: DMIRROR_NR_MIGRATE_TO_DEV
        case .migrateToSystem: DMIRROR_NR_MIGRATE_TO_SYS
        case .snapshot: DMIRROR_NR_SNAPSHOT
        case .exclusive: DMIRROR_NR_EXCLUSIVE
        case .checkExclusive: DMIRROR_NR_CHECK_EXCLUSIVE
        case .release: DMIRROR_NR_RELEASE
        case .flags: DMIRROR_NR_FLAGS
        case .readUnlocked: DMIRROR_NR_READ_UNLOCKED
        case .migrateOnFaultToDevice: DMIRROR_NR_PROPOSED_MIGRATE_ON_FAULT_TO_DEV
        }
        return UInt8(nr)
    }
}

/// A kernel's version, from its `uname -r` release ("6.12.57+deb13-amd64" → 6.12.57).
public struct KernelVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Nil for a release that does not start with major.minor.
    public init?(release: String) {
        let digits = release.prefix { $0.isNumber || $0 == "." }
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false).prefix(3).map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1] else { return nil }
        self.init(major, minor, parts.count > 2 ? parts[2] ?? 0 : 0)
    }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }
}
