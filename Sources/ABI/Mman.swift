import CDmirror

// The mmap/mprotect/madvise/mremap arguments of the Linux user ABI. Every
// value comes from the system headers through Module/include/dmirror_abi.h.

/// PROT_* bits.
public struct Protection: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = Protection(rawValue: Int32(DMIRROR_UAPI_PROT_READ))
    public static let write = Protection(rawValue: Int32(DMIRROR_UAPI_PROT_WRITE))
    public static let exec = Protection(rawValue: Int32(DMIRROR_UAPI_PROT_EXEC))
    public static let none: Protection = []
}

/// MAP_* flags.
public struct MapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let shared = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_SHARED))
    public static let `private` = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_PRIVATE))
    public static let fixed = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_FIXED))
    public static let anonymous = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_ANONYMOUS))
    public static let populate = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_POPULATE))
    public static let hugetlb = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_HUGETLB))
    public static let fixedNoReplace = MapFlags(rawValue: Int32(DMIRROR_UAPI_MAP_FIXED_NOREPLACE))
}

/// madvise(2) advice values.
public struct Advice: RawRepresentable, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// MADV_DONTNEED.
    public static let dontNeed = Advice(rawValue: Int32(DMIRROR_UAPI_MADV_DONTNEED))
    /// MADV_FREE.
    public static let free = Advice(rawValue: Int32(DMIRROR_UAPI_MADV_FREE))
    /// MADV_HUGEPAGE.
    public static let hugePage = Advice(rawValue: Int32(DMIRROR_UAPI_MADV_HUGEPAGE))
    /// MADV_NOHUGEPAGE.
    public static let noHugePage = Advice(rawValue: Int32(DMIRROR_UAPI_MADV_NOHUGEPAGE))
    /// MADV_COLLAPSE.
    public static let collapse = Advice(rawValue: Int32(DMIRROR_UAPI_MADV_COLLAPSE))

    public static let allCases: [Advice] = [.dontNeed, .free, .hugePage, .noHugePage, .collapse]

    /// MADV_DONTNEED, ..., or the number for advice dmirror does not name.
    public var description: String {
        switch self {
        case .dontNeed: "MADV_DONTNEED"
        case .free: "MADV_FREE"
        case .hugePage: "MADV_HUGEPAGE"
        case .noHugePage: "MADV_NOHUGEPAGE"
        case .collapse: "MADV_COLLAPSE"
        default: "madvise(\(rawValue))"
        }
    }
}

/// MREMAP_* flags.
public struct RemapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let mayMove = RemapFlags(rawValue: Int32(DMIRROR_UAPI_MREMAP_MAYMOVE))
    public static let fixed = RemapFlags(rawValue: Int32(DMIRROR_UAPI_MREMAP_FIXED))
    public static let dontUnmap = RemapFlags(rawValue: Int32(DMIRROR_UAPI_MREMAP_DONTUNMAP))
}

/// O_TMPFILE (open(2)), for hmm_create_file().
public let openTemporaryFileFlag = dmirror_UAPI_O_TMPFILE
