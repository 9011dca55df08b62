#if canImport(Glibc)
import Glibc
#endif

/// The built `dmirror` executable and a way to run it from tests.
///
/// The test target depends on the `dmirror` executable target, so SwiftPM
/// builds it into the same directory as the test bundle
/// (.build/<triple>/<config>/dmirror). DMIRROR_EXECUTABLE overrides the lookup.
enum DmirrorExecutable {
    static let path: String? = locate()

    static func locate() -> String? {
        if let forced = getenv("DMIRROR_EXECUTABLE") {
            let path = String(cString: forced)
            return access(path, X_OK) == 0 ? path : nil
        }
        var candidates: [String] = []
        if let me = selfExecutable() {
            var directory = parent(me)
            // The bundle may be a directory (…/dmirrorPackageTests.xctest/…) on some layouts.
            for _ in 0..<4 {
                candidates.append(directory + "/dmirror")
                directory = parent(directory)
            }
        }
        // From this source file: <package>/Tests/DmirrorTests/HarnessSupport.swift.
        let package = parent(parent(parent("\(#filePath)")))
        for configuration in ["debug", "release"] {
            candidates.append("\(package)/.build/\(configuration)/dmirror")
        }
        return candidates.first { access($0, X_OK) == 0 }
    }

    private static func selfExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// Whether the real driver is usable here (/dev/hmm_dmirror0 opens read-write).
    static var kernelDriverAvailable: Bool {
        let fd = open("/dev/hmm_dmirror0", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }
}

/// What a finished `dmirror` process left.
struct ProcessOutput {
    var status: Int32
    var signal: Int32?
    var stdout: String
    var stderr: String
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLastIfEmpty() }
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLastIfEmpty() }
}

extension Array where Element == String {
    func dropLastIfEmpty() -> [String] { last == "" ? Array(dropLast()) : self }
}

enum SpawnError: Error, CustomStringConvertible {
    case noExecutable
    case spawn(Int32)
    var description: String {
        switch self {
        case .noExecutable: "the dmirror executable was not found next to the test bundle (set DMIRROR_EXECUTABLE)"
        case .spawn(let code): "posix_spawn failed: \(code)"
        }
    }
}

/// Runs `dmirror arguments...` to completion, collecting stdout and stderr separately
/// (or, `mergingStderr`, both into `stdout` through one pipe, as `2>&1` does).
/// `stdoutPath`: stdout goes to that file instead (e.g. /dev/full), and `stdout` comes back empty.
func runDmirror(_ arguments: [String], environment extra: [String] = [], mergingStderr: Bool = false,
                stdoutPath: String? = nil) throws -> ProcessOutput {
    guard let executable = DmirrorExecutable.path else { throw SpawnError.noExecutable }
    var outPipe: [Int32] = [-1, -1]
    var errPipe: [Int32] = [-1, -1]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw SpawnError.spawn(errno) }
    for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    if let stdoutPath {
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY, 0)
    } else {
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    }
    posix_spawn_file_actions_adddup2(&actions, mergingStderr ? outPipe[1] : errPipe[1], 2)

    var environment: [String] = []
    if var pointer = Optional(environ) {
        while let entry = pointer.pointee {
            environment.append(String(cString: entry))
            pointer = pointer.successor()
        }
    }
    environment += extra
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    close(outPipe[1])
    close(errPipe[1])
    guard rc == 0 else {
        close(outPipe[0])
        close(errPipe[0])
        throw SpawnError.spawn(rc)
    }

    var out: [UInt8] = []
    var err: [UInt8] = []
    var open = [true, true]
    var chunk = [UInt8](repeating: 0, count: 65536)
    while open[0] || open[1] {
        var fds = [pollfd(fd: open[0] ? outPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: open[1] ? errPipe[0] : -1, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 2, -1) < 0 {
            if errno == EINTR { continue }
            break
        }
        for index in 0..<2 where open[index] && fds[index].revents != 0 {
            let n = chunk.withUnsafeMutableBytes { read(fds[index].fd, $0.baseAddress, $0.count) }
            if n > 0 {
                if index == 0 { out += chunk[0..<n] } else { err += chunk[0..<n] }
            } else if n == 0 || errno != EINTR {
                open[index] = false
            }
        }
    }
    close(outPipe[0])
    close(errPipe[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signaled = status & 0x7f
    return ProcessOutput(status: signaled == 0 ? (status >> 8) & 0xff : -1,
                         signal: signaled == 0 ? nil : signaled,
                         stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: err, as: UTF8.self))
}
