// The scenario parser: fed one line at a time (so a file is never held whole),
// it checks syntax and meaning together (every name defined before its use,
// every page range inside its mapping, files open where they are used) and
// builds the syntax tree. The first problem is an error naming file:line:column.

/// Parses a scenario line by line.
public struct ScenarioParser {
    /// What a name stands for at a point of the scenario (names are statically scoped:
    /// a fork block sees its parent's names, and what it defines ends with it).
    enum Binding: Equatable {
        case mapping(pages: Int, line: Int)
        case tempFile(pages: Int, line: Int)
        /// A dmirror file; closed files stay bound so their use can be refused by name.
        case device(open: Bool, line: Int)

        var kind: String {
            switch self {
            case .mapping: "a mapping"
            case .tempFile: "a file"
            case .device: "a device file"
            }
        }

        var line: Int {
            switch self {
            case .mapping(_, let l), .tempFile(_, let l), .device(_, let l): l
            }
        }
    }

    /// A block being read: the top level, or a fork's body.
    struct Block {
        var statements: [Statement] = []
        /// The `fork {` line (0 at top level).
        var forkLine = 0
        /// The names as the block's parent had them (restored at `}`).
        var parentScope: [String: Binding] = [:]
    }

    public let file: String
    var lineNumber = 0
    var statementCount = 0
    var blocks: [Block] = [Block()]
    var scope: [String: Binding] = [:]

    public init(file: String) {
        self.file = file
    }

    /// How many lines were fed so far.
    public var linesRead: Int { lineNumber }

    /// Parses `text` as a whole (tests, generated scenarios).
    public static func parse(_ text: String, file: String) throws(ScenarioError) -> Scenario {
        var parser = ScenarioParser(file: file)
        var lines = Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // A final newline ends the last line; it does not start another.
        if lines.last?.isEmpty == true && !lines.isEmpty { lines.removeLast() }
        for line in lines {
            guard line.count <= ScenarioLimits.lineBytes else {
                throw parser.tooLong()
            }
            try parser.feed(line: line)
        }
        return try parser.finish()
    }

    /// The error for line `lineNumber + 1` being longer than `ScenarioLimits.lineBytes`
    /// (the reader stops at the limit, so the line is never held whole).
    public func tooLong() -> ScenarioError {
        ScenarioError(file: file, line: lineNumber + 1, column: ScenarioLimits.lineBytes + 1,
                      message: "line longer than \(ScenarioLimits.lineBytes) bytes (a scenario has one short operation per line)")
    }

    /// Parses the next line (without its newline).
    public mutating func feed(line bytes: ArraySlice<UInt8>) throws(ScenarioError) {
        lineNumber += 1
        let line = try Lexer.lex(bytes, line: lineNumber, file: file)
        guard let first = line.tokens.first else { return }
        statementCount += 1
        if statementCount > ScenarioLimits.statements {
            throw ScenarioError(file: file, line: lineNumber, column: 1,
                                message: "more than \(ScenarioLimits.statements) statements in one scenario")
        }
        var cursor = Cursor(line: line, file: file)
        if first.isPunct("}") {
            try closeBlock(&cursor)
            return
        }
        if first.isWord("expect") {
            _ = cursor.next()
            let expectation = try parseExpectation(&cursor)
            guard !blocks[blocks.count - 1].statements.isEmpty else {
                throw cursor.error(first.column, "expect with no operation before it in this block")
            }
            let last = blocks[blocks.count - 1].statements.count - 1
            blocks[blocks.count - 1].statements[last].expectations.append(expectation)
            return
        }
        if first.isWord("fork") {
            _ = cursor.next()
            guard let brace = cursor.next(), brace.isPunct("{") else {
                throw cursor.missing("{", usage: "fork {")
            }
            try cursor.expectEnd(usage: "fork {")
            guard blocks.count <= ScenarioLimits.forkDepth else {
                throw cursor.error(first.column, "fork blocks nest at most \(ScenarioLimits.forkDepth) deep")
            }
            blocks.append(Block(forkLine: lineNumber, parentScope: scope))
            return
        }
        let operation = try parseOperation(&cursor)
        blocks[blocks.count - 1].statements.append(Statement(operation, line: lineNumber))
    }

    private mutating func closeBlock(_ cursor: inout Cursor) throws(ScenarioError) {
        let brace = cursor.next()!
        guard blocks.count > 1 else { throw cursor.error(brace.column, "} without a fork { before it") }
        try cursor.expectEnd(usage: "}")
        let block = blocks.removeLast()
        scope = block.parentScope
        let fork = Statement(.fork(block.statements), line: block.forkLine, endLine: lineNumber)
        blocks[blocks.count - 1].statements.append(fork)
    }

    /// The scenario, once every line was fed.
    public func finish() throws(ScenarioError) -> Scenario {
        if blocks.count > 1 {
            throw ScenarioError(file: file, line: blocks[blocks.count - 1].forkLine, column: 1,
                                message: "fork { is never closed with }")
        }
        guard statementCount > 0 else {
            throw ScenarioError(file: file, line: 1, column: 1, message: "empty scenario: no operation")
        }
        return Scenario(name: file, statements: blocks[0].statements)
    }

    // MARK: Names

    /// The pages of mapping `token` here, or the error naming what it is instead.
    func mappingPages(_ token: Token, _ cursor: Cursor) throws(ScenarioError) -> Int {
        switch scope[token.text] {
        case .mapping(let pages, _)?: return pages
        case nil: throw cursor.error(token.column, "unknown mapping \(token.text) (no mmap or mremap defines it before this line)")
        case let other?: throw cursor.error(token.column, "\(token.text) is \(other.kind) (line \(other.line)), not a mapping")
        }
    }

    /// Checks that `token` names an open device file.
    func checkOpenDevice(_ token: Token, _ cursor: Cursor) throws(ScenarioError) {
        switch scope[token.text] {
        case .device(true, _)?: return
        case .device(false, let line)?:
            throw cursor.error(token.column, "device file \(token.text) was closed at line \(line); open it again first")
        case nil: throw cursor.error(token.column, "unknown device file \(token.text) (open it first: open \(token.text) UNIT)")
        case let other?: throw cursor.error(token.column, "\(token.text) is \(other.kind) (line \(other.line)), not a device file")
        }
    }

    /// Binds `token` as a new name of `binding`'s kind; a name keeps one kind.
    mutating func bind(_ token: Token, _ binding: Binding, _ cursor: Cursor) throws(ScenarioError) {
        if let old = scope[token.text], old.kind != binding.kind {
            throw cursor.error(token.column, "\(token.text) is already \(old.kind) (line \(old.line)); use another name")
        }
        scope[token.text] = binding
    }
}

/// Reads one line's tokens in order.
struct Cursor {
    let line: LexedLine
    let file: String
    var index = 0

    init(line: LexedLine, file: String) {
        self.line = line
        self.file = file
    }

    var peek: Token? { index < line.tokens.count ? line.tokens[index] : nil }
    var atEnd: Bool { index >= line.tokens.count }

    mutating func next() -> Token? {
        defer { if index < line.tokens.count { index += 1 } }
        return peek
    }

    func error(_ column: Int, _ message: String) -> ScenarioError {
        ScenarioError(file: file, line: line.number, column: column, message: message)
    }

    /// A missing argument, reported just past the line's last token.
    func missing(_ what: String, usage: String) -> ScenarioError {
        error(line.endColumn, "missing \(what) (usage: \(usage))")
    }

    /// Nothing may follow.
    func expectEnd(usage: String) throws(ScenarioError) {
        if let extra = peek {
            throw error(extra.column, "unexpected \"\(extra.text)\" (usage: \(usage))")
        }
    }

    /// A word naming something (a mapping, a file).
    mutating func name(_ what: String, usage: String) throws(ScenarioError) -> Token {
        guard let token = next() else { throw missing(what, usage: usage) }
        guard token.kind == .word else { throw error(token.column, "expected \(what), found \"\(token.text)\" (usage: \(usage))") }
        return token
    }

    /// A number (decimal, or hex with 0x) no larger than `maximum`.
    mutating func number(_ what: String, usage: String, maximum: UInt64 = .max) throws(ScenarioError) -> UInt64 {
        guard let token = next() else { throw missing(what, usage: usage) }
        return try value(of: token, what, maximum: maximum)
    }

    func value(of token: Token, _ what: String, maximum: UInt64 = .max) throws(ScenarioError) -> UInt64 {
        guard token.kind == .number else {
            throw error(token.column, "expected \(what) (a number), found \"\(token.text)\"")
        }
        let text = token.text
        let parsed: UInt64? = text.hasPrefix("0x") || text.hasPrefix("0X")
            ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text, radix: 10)
        guard let parsed, !(text.count > 1 && text.hasPrefix("0") && !text.hasPrefix("0x") && !text.hasPrefix("0X")) else {
            throw error(token.column, "bad number \"\(text)\" (decimal, or hex with 0x)")
        }
        guard parsed <= maximum else { throw error(token.column, "\(what) \(text) is too large (at most \(maximum))") }
        return parsed
    }

    /// A page count: 1 ... ScenarioLimits.pages.
    mutating func pageCount(_ what: String, usage: String) throws(ScenarioError) -> Int {
        guard let token = peek else { throw missing(what, usage: usage) }
        let n = try number(what, usage: usage, maximum: UInt64(ScenarioLimits.pages))
        guard n > 0 else { throw error(token.column, "\(what) must be at least 1") }
        return Int(n)
    }

    /// `key=` then the value's first token.
    mutating func keyValue(_ key: Token) throws(ScenarioError) -> Token {
        guard let eq = next(), eq.isPunct("=") else { throw error(key.column + key.text.utf8.count, "expected = after \(key.text)") }
        guard let value = next() else { throw error(eq.column + 1, "missing the value of \(key.text)=") }
        return value
    }

    /// The text of the line from `column` on, up to a comment, trimmed.
    func rest(from column: Int) -> String {
        let bytes = Array(line.text.utf8)
        var piece = bytes.count >= column ? Array(bytes[(column - 1)...]) : []
        if let hash = piece.firstIndex(of: UInt8(ascii: "#")) { piece = Array(piece[..<hash]) }
        return String(decoding: piece, as: UTF8.self).trimmingSpaces()
    }

    /// Skips every remaining token.
    mutating func consumeAll() { index = line.tokens.count }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
