import CDmirror

/// One byte of HMM_DMIRROR_SNAPSHOT output: how the CPU maps one page, as the device sees it.
///
/// The high nibble is an enumerated kind (not independent bits: REMOTE 0x30
/// overlaps LOCAL|ZERO bit-wise); the low bits are READ xor WRITE plus an
/// optional PMD or PUD mapping level. Every value is the C header's.
public struct SnapshotEntry: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// What backs the page (the high nibble).
    public enum Kind: Sendable, CaseIterable {
        case normal, zero, devicePrivateLocal, devicePrivateRemote, deviceCoherentLocal, deviceCoherentRemote

        /// HMM_DMIRROR_PROT_ZERO, _DEV_PRIVATE_LOCAL, ...
        public var bits: UInt8 {
            let value: Int = switch self {
            case .normal: DMIRROR_PROT_NONE
            case .zero: DMIRROR_PROT_ZERO
            case .devicePrivateLocal: DMIRROR_PROT_DEV_PRIVATE_LOCAL
            case .devicePrivateRemote: DMIRROR_PROT_DEV_PRIVATE_REMOTE
            case .deviceCoherentLocal: DMIRROR_PROT_DEV_COHERENT_LOCAL
            case .deviceCoherentRemote: DMIRROR_PROT_DEV_COHERENT_REMOTE
            }
            return UInt8(value)
        }

        var name: String {
            switch self {
            case .normal: ""
            case .zero: "zero"
            case .devicePrivateLocal: "private-local"
            case .devicePrivateRemote: "private-remote"
            case .deviceCoherentLocal: "coherent-local"
            case .deviceCoherentRemote: "coherent-remote"
            }
        }
    }

    /// How the CPU may access the page.
    public enum Access: Sendable, CaseIterable {
        case none, read, write

        /// HMM_DMIRROR_PROT_READ / _WRITE.
        public var bits: UInt8 {
            switch self {
            case .none: 0
            case .read: UInt8(DMIRROR_PROT_READ)
            case .write: UInt8(DMIRROR_PROT_WRITE)
            }
        }
    }

    /// The page-table level that maps it (hmm_pfn_to_map_order()).
    public enum Level: Sendable, CaseIterable {
        case pte, pmd, pud

        /// HMM_DMIRROR_PROT_PMD / _PUD.
        public var bits: UInt8 {
            switch self {
            case .pte: 0
            case .pmd: UInt8(DMIRROR_PROT_PMD)
            case .pud: UInt8(DMIRROR_PROT_PUD)
            }
        }
    }

    /// HMM_DMIRROR_PROT_ERROR: no valid mapping (no VMA, PROT_NONE, special mapping).
    public static let error = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_ERROR))
    /// HMM_DMIRROR_PROT_NONE: not populated (or another device's private page).
    public static let none = SnapshotEntry(rawValue: UInt8(DMIRROR_PROT_NONE))
    /// A normal page, read-only (HMM_DMIRROR_PROT_READ).
    public static let read = SnapshotEntry(kind: .normal, access: .read)
    /// A normal page, writable (HMM_DMIRROR_PROT_WRITE).
    public static let write = SnapshotEntry(kind: .normal, access: .write)

    /// Composes an entry the way dmirror_mkentry() does: kind, then access, then level.
    public init(kind: Kind, access: Access, level: Level = .pte) {
        rawValue = kind.bits | access.bits | level.bits
    }

    public var isError: Bool { self == .error }

    /// nil for the error byte and for kinds the ABI does not define.
    public var kind: Kind? {
        guard !isError else { return nil }
        return Kind.allCases.first { $0.bits == rawValue & 0xF0 }
    }

    public var access: Access {
        if isError { return .none }
        if rawValue & Access.write.bits != 0 { return .write }
        if rawValue & Access.read.bits != 0 { return .read }
        return .none
    }

    public var level: Level {
        if isError { return .pte }
        if rawValue & Level.pud.bits != 0 { return .pud }
        if rawValue & Level.pmd.bits != 0 { return .pmd }
        return .pte
    }

    /// e.g. "private-local|write|pmd", "zero|read", "none", "error".
    public var description: String {
        if isError { return "error" }
        guard let kind else { return "0x" + String(rawValue, radix: 16) }
        var parts = kind.name.isEmpty ? [] : [kind.name]
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
