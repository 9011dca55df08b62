import CDmirror

/// A generation of the dmirror ioctl numbering.
///
/// The request numbers are not stable across kernels: v6.0 inserted
/// MIGRATE_TO_SYS at 0x03 and shifted SNAPSHOT/EXCLUSIVE/CHECK_EXCLUSIVE up
/// by one; 6.1 added RELEASE, 6.18 FLAGS and 7.3 READ_UNLOCKED.
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

    /// The generation the simulator models and the default when nothing else is known.
    public static let newest: ABIGeneration = .v7_3

    public var description: String { "Linux \(rawValue) ABI" }

    private var version: (Int, Int) {
        let parts = rawValue.split(separator: ".").map { Int($0)! }
        return (parts[0], parts[1])
    }

    public static func < (a: ABIGeneration, b: ABIGeneration) -> Bool { a.version < b.version }

    /// The generation a kernel of this `uname -r` release speaks, e.g. "7.3.4-amd64" → `.v7_3`.
    /// Returns nil for releases older than v5.7 (no test_hmm) or that cannot be parsed.
    public init?(kernelRelease: String) {
        let digits = kernelRelease.prefix { $0.isNumber || $0 == "." }
        let parts = digits.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return nil }
        let release = (parts[0], parts[1])
        guard let match = ABIGeneration.allCases.last(where: { $0.version <= release }) else { return nil }
        self = match
    }

    /// The ioctl request number `command` has in this generation, or nil if the command does not exist yet.
    public func request(for command: DmirrorCommand) -> UInt? {
        guard let nr = number(for: command) else { return nil }
        return ABIGeneration.ioctlRequest(nr: nr)
    }

    /// The `nr` byte of `_IOWR('H', nr, struct hmm_dmirror_cmd)` for `command`.
    public func number(for command: DmirrorCommand) -> UInt8? {
        let modern = self >= .v6_0
        switch command {
        case .read: return 0x00
        case .write: return 0x01
        case .migrateToDevice: return 0x02
        case .migrateToSystem: return modern ? 0x03 : nil
        case .snapshot: return modern ? 0x04 : 0x03
        case .exclusive: return modern ? 0x05 : (self >= .v5_14 ? 0x04 : nil)
        case .checkExclusive: return modern ? 0x06 : (self >= .v5_14 ? 0x05 : nil)
        case .release: return self >= .v6_1 ? 0x07 : nil
        case .flags: return self >= .v6_18 ? 0x08 : nil
        case .readUnlocked: return self >= .v7_3 ? 0x09 : nil
        }
    }

    /// The command a request number means in this generation (the inverse of `request(for:)`).
    public func command(forRequest request: UInt) -> DmirrorCommand? {
        DmirrorCommand.allCases.first { self.request(for: $0) == request }
    }

    /// `_IOWR('H', nr, struct hmm_dmirror_cmd)`, computed by the C shim's macro.
    public static func ioctlRequest(nr: UInt8) -> UInt {
        UInt(DmirrorShim.iowr(nr))
    }
}

/// Values the C header computes, surfaced for Swift (macros with arguments are not imported).
enum DmirrorShim {
    static func iowr(_ nr: UInt8) -> UInt32 {
        (DMIRROR_IOC_DIR_RW << 30) | (UInt32(MemoryLayout<dmirror_cmd>.size) << 16)
            | (DMIRROR_IOC_TYPE << 8) | UInt32(nr)
    }
}
