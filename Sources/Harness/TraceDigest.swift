/// How a command trace digests the data a command returned (`data=<name>:<16 hex>`),
/// and the trace format version that goes with it (the header's `v<N>`).
///
/// v1 traces digest byte by byte with FNV-1a 64: eight dependent multiplies per
/// 8 bytes, which under QEMU's TCG made the suite's ~400 MiB of read-back data cost
/// about a second per run. v2 folds whole 64-bit words with FNV-1a's constants: one
/// multiply per 8 bytes, each step still a bijection of the state, so a trace that
/// differs in one word still differs in its digest.
public enum TraceDigest: String, CaseIterable, Sendable {
    /// v1: FNV-1a 64 over the bytes in memory order.
    case fnv1a64
    /// v2: h = (h ^ w) * p over each little-endian 64-bit word, then FNV-1a over the
    /// tail bytes, then h ^ (h >> 32) so high-bit differences reach the low digits.
    case fnv1a64w

    /// What `dmirror run --trace` writes unless told otherwise.
    public static let current: TraceDigest = .fnv1a64w

    /// The trace format version whose lines carry this digest.
    public var version: Int {
        switch self {
        case .fnv1a64: 1
        case .fnv1a64w: 2
        }
    }

    /// The digest of a trace of format `version`, nil for a version this build does not know.
    public init?(version: Int) {
        guard let digest = Self.allCases.first(where: { $0.version == version }) else { return nil }
        self = digest
    }

    /// `<name>:<16 hex digits>` of `bytes`.
    public func field(_ bytes: UnsafeRawBufferPointer) -> String {
        rawValue + ":" + TraceFormat.hex(digest(bytes), width: 16)
    }

    public func digest(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        switch self {
        case .fnv1a64: TraceFormat.digest(bytes)
        case .fnv1a64w: Self.words(bytes)
        }
    }

    @_optimize(speed)
    private static func words(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let prime: UInt64 = 0x0000_0100_0000_01b3
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        guard let start = bytes.baseAddress, bytes.count > 0 else { return hash ^ (hash >> 32) }
        var p = start
        let wordEnd = start + bytes.count / 8 * 8
        while p < wordEnd {
            hash = (hash ^ UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))) &* prime
            p += 8
        }
        let end = start + bytes.count
        while p < end {
            hash = (hash ^ UInt64(p.load(as: UInt8.self))) &* prime
            p += 1
        }
        return hash ^ (hash >> 32)
    }
}
