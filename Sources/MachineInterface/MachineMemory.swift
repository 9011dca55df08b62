import ABI

/// Typed CPU access on top of `Machine.load`/`store`: the suite's `int *ptr` loops.
extension Machine {
    /// Walks are not counted unless the machine says how.
    public func pageWalkCount() -> Int? { nil }

    /// Not this process's memory unless the machine says so.
    public func directMemory(_ address: UInt64) -> UnsafeMutableRawPointer? { nil }

    /// `for (i = 0; i < count; ++i) ptr[i] = value(i)` as one bulk store.
    /// Always inlined, so `value` is inlined into the fill loop at the call site: a call
    /// per int costs the suite's fills (millions of ints) dearly under QEMU's TCG.
    @inlinable @inline(__always)
    public func storeInt32s(_ address: UInt64, count: Int, _ value: (Int) -> Int32) {
        if count > 0, let memory = directMemory(address) {
            let ints = memory.bindMemory(to: Int32.self, capacity: count)
            for i in 0..<count { ints[i] = value(i) }
            return
        }
        let values = UnsafeMutableBufferPointer<Int32>.allocate(capacity: count)
        defer { values.deallocate() }
        for i in 0..<count { values[i] = value(i) }
        store(address, from: UnsafeRawBufferPointer(values))
    }

    /// Stores `values` at `address`.
    public func storeInt32s(_ address: UInt64, _ values: [Int32]) {
        values.withUnsafeBytes { store(address, from: $0) }
    }

    /// Loads `count` 32-bit ints starting at `address`.
    @inlinable
    public func loadInt32s(_ address: UInt64, count: Int) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
            load(address, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Loads one 32-bit int.
    public func loadInt32(_ address: UInt64) -> Int32 {
        var value: Int32 = 0
        withUnsafeMutableBytes(of: &value) { load(address, into: $0) }
        return value
    }

    /// Stores one 32-bit int.
    public func storeInt32(_ address: UInt64, _ value: Int32) {
        withUnsafeBytes(of: value) { store(address, from: $0) }
    }

    /// Loads `count` bytes.
    public func loadBytes(_ address: UInt64, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            load(address, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
