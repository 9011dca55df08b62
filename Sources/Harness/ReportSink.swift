import ABI
import Syscalls
import SystemPackage

/// Where a reporter writes: the process's stdout and stderr, or memory in tests.
public protocol ReportSink: AnyObject {
    func out(_ line: String)
    func err(_ line: String)
    /// Raw bytes a case wrote, to stream 1 (stdout) or 2 (stderr).
    func write(_ stream: Int32, _ bytes: [UInt8])
    /// Whether stdout and stderr reach the same file, pipe or terminal.
    var streamsShareDestination: Bool { get }
    /// The first write that failed (a full disk, a closed pipe): the report is incomplete.
    var failure: (stream: Int32, errno: Errno)? { get }
}

extension ReportSink {
    /// As lines (a last line without its newline still counts).
    public func write(_ stream: Int32, _ bytes: [UInt8]) {
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for line in lines { stream == 2 ? err(String(line)) : out(String(line)) }
    }

    public var streamsShareDestination: Bool { false }
    public var failure: (stream: Int32, errno: Errno)? { nil }
}

/// Lines straight to fd 1 and fd 2 with write(2): nothing is buffered, so the
/// harness's lines and the case processes' output interleave in order. A
/// failed write is remembered (`failure`) and the run fails: a report that
/// did not reach its file must not pass.
public final class StandardSink: ReportSink {
    public private(set) var failure: (stream: Int32, errno: Errno)?

    public init() {}

    public func out(_ line: String) { put(1, line + "\n") }
    public func err(_ line: String) { put(2, line + "\n") }

    public func write(_ stream: Int32, _ bytes: [UInt8]) {
        let fd = stream == 2 ? FileDescriptor.standardError : .standardOutput
        var error: Errno?
        bytes.withUnsafeBytes { raw in
            do throws(Errno) { try Sys.writeAll(fd, raw) } catch let failed { error = failed }
        }
        if let error, failure == nil { failure = (stream == 2 ? 2 : 1, error) }
    }

    private func put(_ stream: Int32, _ text: String) {
        do {
            try Sys.writeAll(stream == 2 ? .standardError : .standardOutput, text)
        } catch {
            if failure == nil { failure = (stream, error) }
        }
    }

    /// fd 1 and fd 2 are the same file (same device and inode: 2>&1, one terminal, /dev/null).
    public var streamsShareDestination: Bool {
        guard let out = try? Sys.fstat(.standardOutput), let err = try? Sys.fstat(.standardError) else { return false }
        return out.st_dev == err.st_dev && out.st_ino == err.st_ino
    }
}

/// Collects lines (for tests).
public final class MemorySink: ReportSink {
    public private(set) var lines: [(stream: Int, text: String)] = []
    public init() {}
    public func out(_ line: String) { lines.append((1, line)) }
    public func err(_ line: String) { lines.append((2, line)) }
    public var stdoutLines: [String] { lines.filter { $0.stream == 1 }.map(\.text) }
    public var stderrLines: [String] { lines.filter { $0.stream == 2 }.map(\.text) }
}
