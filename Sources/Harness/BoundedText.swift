import ABI
import Syscalls
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A small text file read whole, for inputs that may be anything: only a
/// regular file is read (a FIFO would block), at most `limit` bytes, and
/// binary data or invalid UTF-8 is refused with where it is.
public enum BoundedText {
    public enum Problem: Error, CustomStringConvertible {
        case cannotOpen(Errno)
        case notRegular(String)
        case tooLarge(limit: Int)
        case binary(line: Int, byte: UInt8)
        case notUTF8(line: Int)
        case readFailed(Errno)

        public var description: String {
            switch self {
            case .cannotOpen(let errno): "cannot open: \(errno.named)"
            case .notRegular(let kind): "not a regular file (\(kind))"
            case .tooLarge(let limit): "larger than \(limit >> 10) KiB"
            case .binary(let line, let byte): "line \(line): binary data (byte 0x\(String(byte, radix: 16)))"
            case .notUTF8(let line): "line \(line): not UTF-8 text"
            case .readFailed(let errno): "read: \(errno.named)"
            }
        }
    }

    public static func read(_ path: String, limit: Int) throws(Problem) -> String {
        let fd: FileDescriptor
        do {
            fd = try Sys.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } catch {
            throw .cannotOpen(error)
        }
        defer { try? Sys.close(fd) }
        let info: stat
        do { info = try Sys.fstat(fd) } catch { throw .readFailed(error) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFIFO: throw .notRegular("a FIFO")
        case S_IFDIR: throw .notRegular("a directory")
        case S_IFCHR: throw .notRegular("a character device")
        case S_IFSOCK: throw .notRegular("a socket")
        default: throw .notRegular("not a file")
        }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let n: Int
            do { n = try Sys.read(fd, into: chunk) } catch { throw .readFailed(error) }
            if n == 0 { break }
            if bytes.count + n > limit { throw .tooLarge(limit: limit) }
            bytes += chunk[0..<n]
        }
        var line = 1
        for byte in bytes {
            if byte == 0x0A { line += 1 } else if byte < 0x20 && byte != 0x09 && byte != 0x0D || byte == 0x7F {
                throw .binary(line: line, byte: byte)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .notUTF8(line: 1 + bytes.prefix { _ in true }.count(where: { $0 == 0x0A }))
        }
        return text
    }
}
