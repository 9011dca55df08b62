import CDmirror

/// One byte of HMM_DMIRROR_SNAPSHOT output: how the CPU maps one page, as the device sees it.
///
/// The high nibble is an enumerated kind (not independent bits: REMOTE 0x30
/// overlaps LOCAL|ZERO bit-wise); the low bits are READ xor WRITE plus an
/// optional PMD or PUD mapping level.
public struct SnapshotEntry: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public enum Kind: UInt8, Sendable {
        case normal = 0x00
        case zero = 0x10
        case devicePrivateLocal = 0x20
        case devicePrivateRemote = 0x30
        case deviceCoherentLocal = 0x40
        case deviceCoherentRemote = 0x50
    }

    public enum Access: Sendable { case none, read, write }
    public enum Level: Sendable { case pte, pmd, pud }

    /// HMM_DMIRROR_PROT_ERROR: no valid mapping (no VMA, PROT_NONE, special mapping).
    public static let error = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_ERROR))
    /// HMM_DMIRROR_PROT_NONE: not populated (or another device's private page).
    public static let none = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_NONE))
    public static let read = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_READ))
    public static let write = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_WRITE))
    public static let pmd = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_PMD))
    public static let pud = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_PUD))
    public static let zero = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_ZERO))
    public static let devicePrivateLocal = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_DEV_PRIVATE_LOCAL))
    public static let devicePrivateRemote = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_DEV_PRIVATE_REMOTE))
    public static let deviceCoherentLocal = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_DEV_COHERENT_LOCAL))
    public static let deviceCoherentRemote = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_DEV_COHERENT_REMOTE))

    /// Composes an entry the way dmirror_mkentry() does: kind, then access, then level.
    public init(kind: Kind, access: Access, level: Level = .pte) {
        var value = kind.rawValue
        switch access {
        case .none: break
        case .read: value |= SnapshotEntry.read.rawValue
        case .write: value |= SnapshotEntry.write.rawValue
        }
        switch level {
        case .pte: break
        case .pmd: value |= SnapshotEntry.pmd.rawValue
        case .pud: value |= SnapshotEntry.pud.rawValue
        }
        self.rawValue = value
    }

    public static func | (a: SnapshotEntry, b: SnapshotEntry) -> SnapshotEntry {
        SnapshotEntry(rawValue: a.rawValue | b.rawValue)
    }

    public var isError: Bool { self == .error }
    /// nil for the error byte and for kinds the ABI does not define.
    public var kind: Kind? { isError ? nil : Kind(rawValue: rawValue & 0xF0) }
    public var access: Access {
        if isError { return .none }
        if rawValue & SnapshotEntry.write.rawValue != 0 { return .write }
        if rawValue & SnapshotEntry.read.rawValue != 0 { return .read }
        return .none
    }
    public var level: Level {
        if isError { return .pte }
        if rawValue & SnapshotEntry.pud.rawValue != 0 { return .pud }
        if rawValue & SnapshotEntry.pmd.rawValue != 0 { return .pmd }
        return .pte
    }

    public var description: String {
        if isError { return "error" }
        guard let kind else { return "0x" + String(rawValue, radix: 16) }
        let kindName: String = switch kind {
        case .normal: ""
        case .zero: "zero"
        case .devicePrivateLocal: "private-local"
        case .devicePrivateRemote: "private-remote"
        case .deviceCoherentLocal: "coherent-local"
        case .deviceCoherentRemote: "coherent-remote"
        }
        var parts = kindName.isEmpty ? [] : [kindName]
        switch access {
        case .none: parts.append("none")
        case .read: parts.append("read")
        case .write: parts.append("write")
        }
        switch level {
        case .pte: break
        case .pmd: parts.append("pmd")
        case .pud: parts.append("pud")
        }
        return parts.joined(separator: "|")
    }
}
