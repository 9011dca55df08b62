/// gzip (RFC 1952) around DEFLATE (RFC 1951), decoded: enough to read
/// /proc/config.gz without a zlib the test kernel's root filesystem may lack.
/// Bounded: output past `limit` bytes is an error, as is any malformed input.
enum Gunzip {
    enum Failure: Error, CustomStringConvertible {
        case notGzip
        case corrupt(String)
        case tooLarge

        var description: String {
            switch self {
            case .notGzip: "not gzip data"
            case .corrupt(let what): "corrupt gzip data (\(what))"
            case .tooLarge: "decompresses to more than the limit"
            }
        }
    }

    static func decompress(_ data: [UInt8], limit: Int = 16 << 20) throws(Failure) -> [UInt8] {
        guard data.count >= 18, data[0] == 0x1F, data[1] == 0x8B, data[2] == 8 else { throw .notGzip }
        let flags = data[3]
        var offset = 10
        if flags & 4 != 0 {  // FEXTRA
            guard offset + 2 <= data.count else { throw .corrupt("header") }
            offset += 2 + Int(data[offset]) + Int(data[offset + 1]) << 8
        }
        for bit in [UInt8(8), 16] where flags & bit != 0 {  // FNAME, FCOMMENT: zero-terminated
            while offset < data.count && data[offset] != 0 { offset += 1 }
            offset += 1
        }
        if flags & 2 != 0 { offset += 2 }  // FHCRC
        guard offset < data.count else { throw .corrupt("header") }
        var reader = BitReader(data: data, position: offset)
        return try inflate(&reader, limit: limit)
    }

    struct BitReader {
        let data: [UInt8]
        var position: Int
        var bitBuffer: UInt32 = 0
        var bitCount = 0

        mutating func bits(_ n: Int) throws(Failure) -> Int {
            while bitCount < n {
                guard position < data.count else { throw .corrupt("truncated") }
                bitBuffer |= UInt32(data[position]) << UInt32(bitCount)
                position += 1
                bitCount += 8
            }
            let value = Int(bitBuffer & ((1 << UInt32(n)) - 1))
            bitBuffer >>= UInt32(n)
            bitCount -= n
            return value
        }

        mutating func alignToByte() {
            bitBuffer = 0
            bitCount = 0
        }
    }

    /// A canonical Huffman code: symbols by code length, counts per length.
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []

        init(lengths: [Int]) throws(Failure) {
            for length in lengths { counts[length] += 1 }
            counts[0] = 0
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<16 { offsets[length] = offsets[length - 1] + counts[length - 1] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (symbol, length) in lengths.enumerated() where length > 0 {
                symbols[offsets[length]] = symbol
                offsets[length] += 1
            }
        }

        func decode(_ reader: inout BitReader) throws(Failure) -> Int {
            var code = 0, first = 0, index = 0
            for length in 1..<16 {
                code |= try reader.bits(1)
                let count = counts[length]
                if code - first < count { return symbols[index + code - first] }
                index += count
                first = (first + count) << 1
                code <<= 1
            }
            throw .corrupt("bad code")
        }
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
                             163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                               2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                                13, 13]

    static func inflate(_ reader: inout BitReader, limit: Int) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        var last = false
        while !last {
            last = try reader.bits(1) == 1
            switch try reader.bits(2) {
            case 0:
                reader.alignToByte()
                guard reader.position + 4 <= reader.data.count else { throw .corrupt("stored block") }
                let length = Int(reader.data[reader.position]) | Int(reader.data[reader.position + 1]) << 8
                reader.position += 4
                guard reader.position + length <= reader.data.count else { throw .corrupt("stored block") }
                guard out.count + length <= limit else { throw .tooLarge }
                out += reader.data[reader.position..<(reader.position + length)]
                reader.position += length
            case 1:
                let literals = try Huffman(lengths: Array(repeating: 8, count: 144) + Array(repeating: 9, count: 112)
                                           + Array(repeating: 7, count: 24) + Array(repeating: 8, count: 8))
                let distances = try Huffman(lengths: Array(repeating: 5, count: 30))
                try block(&reader, literals, distances, &out, limit)
            case 2:
                let literalCount = try reader.bits(5) + 257
                let distanceCount = try reader.bits(5) + 1
                let codeCount = try reader.bits(4) + 4
                let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                var codeLengths = [Int](repeating: 0, count: 19)
                for i in 0..<codeCount { codeLengths[order[i]] = try reader.bits(3) }
                let codes = try Huffman(lengths: codeLengths)
                var lengths: [Int] = []
                while lengths.count < literalCount + distanceCount {
                    let symbol = try codes.decode(&reader)
                    switch symbol {
                    case 0..<16: lengths.append(symbol)
                    case 16:
                        guard let previous = lengths.last else { throw .corrupt("repeat with no length") }
                        lengths += Array(repeating: previous, count: 3 + (try reader.bits(2)))
                    case 17: lengths += Array(repeating: 0, count: 3 + (try reader.bits(3)))
                    default: lengths += Array(repeating: 0, count: 11 + (try reader.bits(7)))
                    }
                }
                guard lengths.count == literalCount + distanceCount else { throw .corrupt("code lengths") }
                try block(&reader, try Huffman(lengths: Array(lengths[0..<literalCount])),
                          try Huffman(lengths: Array(lengths[literalCount...])), &out, limit)
            default:
                throw .corrupt("block type 3")
            }
        }
        return out
    }

    static func block(_ reader: inout BitReader, _ literals: Huffman, _ distances: Huffman, _ out: inout [UInt8],
                      _ limit: Int) throws(Failure) {
        while true {
            let symbol = try literals.decode(&reader)
            if symbol < 256 {
                guard out.count < limit else { throw .tooLarge }
                out.append(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let index = symbol - 257
            guard index < lengthBase.count else { throw .corrupt("length code") }
            let length = lengthBase[index] + (try reader.bits(lengthExtra[index]))
            let distanceSymbol = try distances.decode(&reader)
            guard distanceSymbol < distanceBase.count else { throw .corrupt("distance code") }
            let distance = distanceBase[distanceSymbol] + (try reader.bits(distanceExtra[distanceSymbol]))
            guard distance <= out.count else { throw .corrupt("distance past the start") }
            guard out.count + length <= limit else { throw .tooLarge }
            let start = out.count - distance
            for i in 0..<length { out.append(out[start + i]) }
        }
    }
}
