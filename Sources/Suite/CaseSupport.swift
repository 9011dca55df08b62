import ABI
import Harness
import MachineInterface

// Small helpers shared by the ported cases. They stand in for the C suite's
// static helpers (hmm_buffer_alloc returning NULL, libc calls returning -1,
// the WIF* macros) so the case bodies can keep the C control flow.

/// `(int)i`: the C suite stores `unsigned long` loop counters into `int`s.
@inline(__always)
func ival(_ i: Int) -> Int32 { Int32(truncatingIfNeeded: i) }

/// hmm_buffer_alloc(): the buffer, or nil where the C helper returns NULL.
func hmmBufferAlloc(_ machine: any Machine, _ mmapSize: Int, _ mirrorSize: Int, _ protection: Protection,
                    _ flags: MapFlags, _ source: MappingSource = .anonymous) -> HMMBuffer? {
    try? HMMBuffer(machine, mmapSize: mmapSize, mirrorSize: mirrorSize, protection: protection,
                   flags: flags, source: source)
}

/// A libc call's return value: 0 when `body` succeeded, -1 when it failed.
func cCall<E: Error>(_ body: () throws(E) -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch {
        return -1
    }
}

extension TestContext {
    /// ASSERT_NE(buffer, NULL): unwraps an `hmmBufferAlloc` result.
    func assertBuffer(_ buffer: HMMBuffer?, fileID: StaticString = #fileID, line: UInt = #line) throws -> HMMBuffer {
        try assertTrue(buffer != nil, "buffer (NULL) != NULL", fileID: fileID, line: line)
        return buffer!
    }

    /// `ALIGN(HMM_BUFFER_SIZE, page_size) >> page_shift` with its ASSERT_NE(npages, 0).
    func standardPageCount(fileID: StaticString = #fileID, line: UInt = #line) throws -> Int {
        let npages = HMMConstants.align(HMMConstants.bufferSize, pageSize) >> pageShift
        try assertNotEqual(npages, 0, "npages", fileID: fileID, line: line)
        return npages
    }

    /// `for (i...) ASSERT_EQ(values[i], expected(i))` over 32-bit ints.
    ///
    /// A tight non-generic scan finds the first mismatch; only then does the
    /// harness's generic `assertElements` run, to report it. (Unspecialised
    /// generic iteration over millions of ints dominates a debug build.)
    @inline(__always)
    func assertInts(_ values: UnsafeBufferPointer<Int32>, _ what: String,
                    fileID: StaticString = #fileID, line: UInt = #line,
                    equal expected: (Int) -> Int32) throws {
        var i = 0
        let count = values.count
        while i < count && values[i] == expected(i) { i += 1 }
        if i == count { return }
        try assertElements(values, what, fileID: fileID, line: line, equal: expected)
    }

    /// `for (i = 0; i < count; ++i) ASSERT_EQ(ptr[i], expected(i))` over the
    /// machine's memory at `address`, as one bulk CPU load.
    @inline(__always)
    func assertCPUInts(_ address: UInt64, count: Int, _ what: String = "ptr",
                       fileID: StaticString = #fileID, line: UInt = #line,
                       equal expected: (Int) -> Int32) throws {
        try assertCPUInts(machine, address, count: count, what, fileID: fileID, line: line, equal: expected)
    }

    /// The same check through another process's CPU (a forked child's machine).
    @inline(__always)
    func assertCPUInts(_ machine: any Machine, _ address: UInt64, count: Int, _ what: String = "ptr",
                       fileID: StaticString = #fileID, line: UInt = #line,
                       equal expected: (Int) -> Int32) throws {
        if count > 0, let memory = machine.directMemory(address) {
            let ints = UnsafeBufferPointer(start: memory.bindMemory(to: Int32.self, capacity: count), count: count)
            try assertInts(ints, what, fileID: fileID, line: line, equal: expected)
            return
        }
        let values = machine.loadInt32s(address, count: count)
        try values.withUnsafeBufferPointer { buffer in
            try assertInts(buffer, what, fileID: fileID, line: line, equal: expected)
        }
    }

    /// The same check over the first `count` ints of a buffer's mirror.
    @inline(__always)
    func assertMirrorInts(_ buffer: HMMBuffer, count: Int, _ what: String = "mirror",
                          fileID: StaticString = #fileID, line: UInt = #line,
                          equal expected: (Int) -> Int32) throws {
        let ints = UnsafeBufferPointer(rebasing: buffer.mirrorInts[0..<count])
        try assertInts(ints, what, fileID: fileID, line: line, equal: expected)
    }
}

extension HMMBuffer {
    /// `for (i...) mirror[i] = value(i)` over the first `count` ints.
    func fillMirror(count: Int, _ value: (Int) -> Int32) {
        let ints = mirrorInts
        for i in 0..<count { ints[i] = value(i) }
    }

    /// memset(mirror, byte, count).
    func setMirrorBytes(_ byte: UInt8, count: Int) {
        mirror.baseAddress!.initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }

    /// The child's view of this buffer after fork(): the same user addresses,
    /// bound to the child's machine, with a private copy of the heap mirror
    /// (fork copies malloc'd memory too). Never freed: the C child `_exit`s
    /// without hmm_buffer_free().
    func forkedCopy(in machine: any Machine) -> HMMBuffer {
        let copy = HMMBuffer(machine, mirrorSize: mirror.count, size: size)
        copy.ptr = ptr
        copy.mirror.copyMemory(from: UnsafeRawBufferPointer(mirror))
        copy.cpages = cpages
        copy.faults = faults
        return copy
    }
}

// MARK: wait status

/// WIFEXITED(status) as the C macro's 0/1.
func wifexited(_ status: ExitStatus) -> Int32 {
    if case .exited = status { return 1 }
    return 0
}

/// WEXITSTATUS(status).
func wexitstatus(_ status: ExitStatus) -> Int32 {
    if case .exited(let code) = status { return code }
    return 0
}

/// WIFSIGNALED(status) as 0/1.
func wifsignaled(_ status: ExitStatus) -> Int32 {
    if case .signaled = status { return 1 }
    return 0
}

/// WTERMSIG(status).
func wtermsig(_ status: ExitStatus) -> Int32 {
    if case .signaled(let signal) = status { return signal.rawValue }
    return 0
}

/// fork() with the C suite's `if (pid == -1) ASSERT_EQ(pid, 0);`.
func forkChild(_ t: TestContext, fileID: StaticString = #fileID, line: UInt = #line,
               _ body: @escaping (any Machine) throws -> Int32) throws -> any ChildProcess {
    do throws(Errno) {
        return try t.machine.fork(body)
    } catch {
        try t.assertEqual(Int32(-1), 0, "pid", fileID: fileID, line: line)
        fatalError("unreachable")
    }
}
