import Harness

// The bytes of a data pattern: a function of the page's index in its mapping
// and of the offset in the page, so stores, device writes, `expect data=`
// and the shadow model all agree on what a page must hold.

extension Pattern {
    /// Fills `buffer` (one page) with page `page` of the pattern.
    @_optimize(speed)
    public func fill(page: Int, into buffer: UnsafeMutableRawBufferPointer) {
        let size = buffer.count
        switch self {
        case .zero:
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
        case .fill(let byte):
            buffer.initializeMemory(as: UInt8.self, repeating: byte)
        case .seq(let base):
            let words = size / 4
            let first = UInt32(truncatingIfNeeded: page &* words) &+ base
            let out = buffer.bindMemory(to: UInt32.self)
            for w in 0..<words { out[w] = (first &+ UInt32(truncatingIfNeeded: w)).littleEndian }
        case .rand(let seed):
            let words = size / 8
            let out = buffer.bindMemory(to: UInt64.self)
            let first = UInt64(truncatingIfNeeded: page &* words)
            for w in 0..<words { out[w] = Pattern.mix(seed &+ (first &+ UInt64(w)) &* 0x9E37_79B9_7F4A_7C15).littleEndian }
        }
    }

    /// Whether `bytes` (one page) is page `page` of the pattern, computed word by word without
    /// making the page (the shadow checks compare every mapped page after every operation).
    @_optimize(speed)
    public func matches(page: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let size = bytes.count
        guard size % 8 == 0 else {
            return bytes.elementsEqual(self.bytes(pages: page, count: 1, pageSize: size))
        }
        switch self {
        case .zero, .fill:
            var byte: UInt8 = 0
            if case .fill(let b) = self { byte = b }
            let word = UInt64(byte) &* 0x0101_0101_0101_0101
            for w in 0..<(size / 8) where bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) != word { return false }
            return true
        case .seq(let base):
            let words = size / 4
            let first = UInt32(truncatingIfNeeded: page &* words) &+ base
            // Two words per 64-bit load; both lanes step by 2 (no lane wraps within the page).
            guard UInt64(first) + UInt64(words) <= UInt64(UInt32.max) else {
                for w in 0..<words where UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: w * 4, as: UInt32.self))
                    != first &+ UInt32(truncatingIfNeeded: w) {
                    return false
                }
                return true
            }
            var expected = (UInt64(first + 1) << 32) | UInt64(first)
            for pair in 0..<(words / 2) {
                if UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: pair * 8, as: UInt64.self)) != expected { return false }
                expected &+= 0x0000_0002_0000_0002
            }
            return true
        case .rand(let seed):
            let words = size / 8
            let first = UInt64(truncatingIfNeeded: page &* words)
            for w in 0..<words where UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self))
                != Pattern.mix(seed &+ (first &+ UInt64(w)) &* 0x9E37_79B9_7F4A_7C15) {
                return false
            }
            return true
        }
    }

    /// Pages [first, first + count) of the pattern, contiguous.
    public func bytes(pages first: Int, count: Int, pageSize: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count * pageSize) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for k in 0..<count {
                fill(page: first + k, into: UnsafeMutableRawBufferPointer(rebasing: raw[(k * pageSize)..<((k + 1) * pageSize)]))
            }
            initialized = count * pageSize
        }
    }

    /// The FNV-1a 64 digest of pages [first, first + count), as result lines print data.
    public func digest(pages first: Int, count: Int, pageSize: Int) -> UInt64 {
        bytes(pages: first, count: count, pageSize: pageSize).withUnsafeBytes { TraceFormat.digest($0) }
    }

    /// SplitMix64's finalizer: a cheap, well-mixed hash of a word.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
