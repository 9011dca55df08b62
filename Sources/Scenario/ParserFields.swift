import ABI

// The key=value statements: raw `ioctl` and `expect`.

extension ScenarioParser {
    /// `ioctl FILE REQUEST|nr=N [size=N] [dir=...] [addr=...] [npages=N] [ptr=buffer|null]`.
    mutating func parseIoctl(_ c: inout Cursor, usage: String) throws(ScenarioError) -> RawIoctl {
        let file = try deviceName(&c, usage: usage)
        var request: RawRequest?
        var nr: UInt64?, size: UInt64 = 40, dir: UInt64 = 3
        var sawEncoding: Token?
        var ioctl = RawIoctl(file: file, request: .number(0))
        while let token = c.next() {
            let isKey = c.peek?.isPunct("=") == true && token.kind == .word
            if !isKey {
                guard request == nil && nr == nil else {
                    throw c.error(token.column, "unexpected \"\(token.text)\": the request is given once (usage: \(usage))")
                }
                if token.kind == .number {
                    request = .number(try c.value(of: token, "the request"))
                } else if let command = Self.commandWords[token.text] {
                    request = .command(command)
                } else {
                    throw c.error(token.column, "unknown request \"\(token.text)\" (a number, nr=N, or one of: \(Self.commandWords.keys.sorted().joined(separator: " ")))")
                }
                continue
            }
            let value = try c.keyValue(token)
            switch token.text {
            case "nr":
                guard request == nil else { throw c.error(token.column, "nr= and a request together (usage: \(usage))") }
                nr = try c.value(of: value, "nr", maximum: 255)
                sawEncoding = token
            case "size":
                size = try c.value(of: value, "size", maximum: (1 << 14) - 1)
                sawEncoding = sawEncoding ?? token
            case "dir":
                let dirs: [String: UInt64] = ["none": 0, "w": 1, "r": 2, "rw": 3]
                guard let d = dirs[value.text] else { throw c.error(value.column, "dir= takes none, r, w or rw") }
                dir = d
                sawEncoding = sawEncoding ?? token
            case "addr":
                if value.kind == .number {
                    ioctl.address = .number(try c.value(of: value, "addr"))
                } else {
                    c.index -= 1
                    let page = try parseRange(&c, usage: usage)
                    if case .span = page.form { throw c.error(value.column, "addr= names one page: addr=NAME[N]") }
                    var plus: UInt64 = 0
                    if let p = c.peek, p.isPunct("+") {
                        _ = c.next()
                        plus = try c.number("the byte offset", usage: usage, maximum: UInt64(ScenarioLimits.pages) * 4096)
                    }
                    ioctl.address = .page(page, plus: plus)
                }
            case "npages":
                ioctl.npages = try c.value(of: value, "npages")
            case "ptr":
                guard value.isWord("buffer") || value.isWord("null") else { throw c.error(value.column, "ptr= takes buffer or null") }
                ioctl.nullPointer = value.isWord("null")
            default:
                throw c.error(token.column, "unknown ioctl field \"\(token.text)\" (usage: \(usage))")
            }
        }
        if let nr {
            ioctl.request = .encoded(nr: nr, size: size, dir: dir)
        } else if let sawEncoding {
            throw c.error(sawEncoding.column, "size= and dir= need nr= (usage: \(usage))")
        } else if let request {
            ioctl.request = request
        } else {
            throw c.missing("the request", usage: usage)
        }
        return ioctl
    }

    /// The dmirror commands by the words scenarios use for them.
    static let commandWords: [String: DmirrorCommand] = {
        var words: [String: DmirrorCommand] = ["write": .write, "release": .release, "flags": .flags]
        for command in RangeCommand.allCases { words[command.rawValue] = command.command }
        return words
    }()

    /// `expect FIELD...`.
    func parseExpectation(_ c: inout Cursor) throws(ScenarioError) -> Expectation {
        let usage = "expect ok|skipped|errno=NAME|cpages=N|faults=N|data=PATTERN|data=fnv1a64:HEX|signal=NAME|exit=N|snapshot=RUNS"
        var fields: [ExpectField] = []
        while let token = c.next() {
            guard token.kind == .word else { throw c.error(token.column, "unexpected \"\(token.text)\" (usage: \(usage))") }
            if token.text == "ok" { fields.append(.ok); continue }
            if token.text == "skipped" { fields.append(.skipped); continue }
            let value = try c.keyValue(token)
            switch token.text {
            case "errno":
                guard value.kind == .word, value.text.hasPrefix("E"), value.text == value.text.uppercased() else {
                    throw c.error(value.column, "errno= takes an errno name such as EINVAL")
                }
                fields.append(.errno(value.text))
            case "signal":
                guard value.kind == .word, value.text.hasPrefix("SIG") else {
                    throw c.error(value.column, "signal= takes a signal name such as SIGSEGV")
                }
                fields.append(.signal(value.text))
            case "cpages": fields.append(.cpages(try c.value(of: value, "cpages")))
            case "faults": fields.append(.faults(try c.value(of: value, "faults")))
            case "exit": fields.append(.exit(Int32(try c.value(of: value, "exit", maximum: 255))))
            case "data":
                if value.isWord("fnv1a64") {
                    guard let colon = c.next(), colon.isPunct(":"), let hex = c.next(),
                          hex.text.utf8.count == 16, let digest = UInt64(hex.text, radix: 16) else {
                        throw c.error(value.column, "data=fnv1a64: takes 16 hex digits")
                    }
                    fields.append(.digest(digest))
                } else {
                    c.index -= 1
                    fields.append(.data(try parsePattern(&c, usage: usage)))
                }
            case "snapshot":
                let runs = c.rest(from: value.column)
                guard let normalized = Self.normalizedRuns(runs) else {
                    throw c.error(value.column, "snapshot= takes run-length hex bytes such as \"20x8 01 02\"")
                }
                fields.append(.snapshot(normalized))
                c.consumeAll()
            default:
                throw c.error(token.column, "unknown expect field \"\(token.text)\" (usage: \(usage))")
            }
        }
        guard !fields.isEmpty else { throw c.missing("what to expect", usage: usage) }
        return Expectation(fields, line: lineNumber)
    }

    /// `20x8 01 02` in canonical form (lower case, one space), or nil if it is not run-length hex.
    static func normalizedRuns(_ text: String) -> String? {
        var runs: [(byte: UInt8, count: Int)] = []
        for item in text.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let pieces = item.lowercased().split(separator: "x", omittingEmptySubsequences: false)
            guard pieces.count <= 2, pieces[0].count == 2, let byte = UInt8(pieces[0], radix: 16) else { return nil }
            var count = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1], radix: 10), n >= 1, n <= 1 << 40 else { return nil }
                count = n
            }
            // "20 20" and "20x2" are the same bytes: merge, as the result line does.
            if let last = runs.last, last.byte == byte {
                runs[runs.count - 1].count += count
            } else {
                runs.append((byte, count))
            }
        }
        guard !runs.isEmpty else { return nil }
        return runs.map { $0.count > 1 ? "\(Lexer.hex2($0.byte))x\($0.count)" : Lexer.hex2($0.byte) }.joined(separator: " ")
    }
}
