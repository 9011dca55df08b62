// The scenario language's lines and tokens. A scenario is UTF-8 text, one
// statement per line; `#` starts a comment. Tokens are words, numbers and
// the punctuation `[ ] : = ( ) { } + ,`; every token knows its column, so an
// error names file:line:column.

/// A malformed scenario: what is wrong and exactly where.
public struct ScenarioError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file as the user named it (`<stdin>` for `-`).
    public var file: String
    /// 1-based line and byte column.
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:column: message`, the form compilers use (editors jump to it).
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// The bounds that keep a scenario's memory and run time finite whatever the input.
public enum ScenarioLimits {
    /// Longest line, in bytes (without its newline). A longer line is refused, never held whole.
    public static let lineBytes = 4096
    /// Most statements (expect lines included) in one scenario.
    public static let statements = 100_000
    /// Largest mapping or file, in pages (256 MiB of 4 KiB pages).
    public static let pages = 65_536
    /// Deepest nesting of fork blocks.
    public static let forkDepth = 4
}

/// One token of a line.
struct Token: Hashable {
    enum Kind: Hashable {
        case word
        case number
        case punct
    }

    let kind: Kind
    let text: String
    /// 1-based byte column of the token's first byte.
    let column: Int

    func isPunct(_ p: String) -> Bool { kind == .punct && text == p }
    func isWord(_ w: String) -> Bool { kind == .word && text == w }
}

/// A line split into tokens, with its text (for the rest-of-line values of `expect snapshot=`).
struct LexedLine {
    let number: Int
    let text: String
    let tokens: [Token]
    /// The column just past the last token (where a missing argument is reported).
    let endColumn: Int
}

enum Lexer {
    /// Checks that `bytes` (one line, no newline) is text and splits it into tokens.
    /// A trailing carriage return (CRLF files) is dropped.
    static func lex(_ bytes: ArraySlice<UInt8>, line: Int, file: String) throws(ScenarioError) -> LexedLine {
        var bytes = bytes
        if bytes.last == 0x0D { bytes.removeLast() }
        func fail(_ column: Int, _ message: String) -> ScenarioError {
            ScenarioError(file: file, line: line, column: column, message: message)
        }
        // Binary data: control bytes (other than tab) or bytes that are not UTF-8.
        for (k, byte) in bytes.enumerated() where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            throw fail(k + 1, "binary data (byte 0x\(hex2(byte))): a scenario is text, one operation per line")
        }
        if let bad = firstInvalidUTF8(bytes) {
            throw fail(bad + 1, "binary data (not UTF-8): a scenario is text, one operation per line")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var tokens: [Token] = []
        let array = Array(bytes)
        var i = 0
        while i < array.count {
            let byte = array[i]
            let column = i + 1
            if byte == 0x20 || byte == 0x09 {
                i += 1
            } else if byte == UInt8(ascii: "#") {
                break
            } else if isWordStart(byte) || isDigit(byte) {
                var j = i + 1
                while j < array.count && (isWordStart(array[j]) || isDigit(array[j])) { j += 1 }
                let piece = String(decoding: array[i..<j], as: UTF8.self)
                tokens.append(Token(kind: isDigit(byte) ? .number : .word, text: piece, column: column))
                i = j
            } else if "[]:=(){}+,".utf8.contains(byte) {
                tokens.append(Token(kind: .punct, text: String(UnicodeScalar(byte)), column: column))
                i += 1
            } else {
                // One whole character, for the message (it may be several bytes of UTF-8).
                var j = i + 1
                while j < array.count && array[j] & 0xC0 == 0x80 { j += 1 }
                let shown = String(decoding: array[i..<j], as: UTF8.self)
                throw fail(column, "unexpected character \"\(shown)\"")
            }
        }
        let end = (tokens.last.map { $0.column + $0.text.utf8.count } ?? 1)
        return LexedLine(number: line, text: text, tokens: tokens, endColumn: end)
    }

    static func isWordStart(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// Lower-case two-digit hex.
    static func hex2(_ b: UInt8) -> String {
        let digits = String(b, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }

    /// The index of the first byte that does not belong to valid UTF-8, if any.
    static func firstInvalidUTF8(_ bytes: ArraySlice<UInt8>) -> Int? {
        let array = Array(bytes)
        var i = 0
        while i < array.count {
            let b = array[i]
            let length: Int
            if b < 0x80 { i += 1; continue }
            if b & 0xE0 == 0xC0 && b >= 0xC2 { length = 2 }
            else if b & 0xF0 == 0xE0 { length = 3 }
            else if b & 0xF8 == 0xF0 && b <= 0xF4 { length = 4 }
            else { return i }
            guard i + length <= array.count else { return i }
            for k in 1..<length where array[i + k] & 0xC0 != 0x80 { return i }
            // Overlong three-byte forms and UTF-16 surrogates are not UTF-8.
            if length == 3 {
                let v = (UInt32(b & 0x0F) << 12) | (UInt32(array[i + 1] & 0x3F) << 6)
                if v < 0x800 || (v >= 0xD800 && v <= 0xDFFF) { return i }
            }
            if length == 4 {
                let v = (UInt32(b & 0x07) << 18) | (UInt32(array[i + 1] & 0x3F) << 12)
                if v < 0x10000 || v > 0x10FFFF { return i }
            }
            i += length
        }
        return nil
    }
}
