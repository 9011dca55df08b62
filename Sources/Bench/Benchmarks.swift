import ABI
import MachineInterface
import Syscalls

/// `dmirror bench`: per-ioctl latency of the dmirror commands a driver's fast
/// paths are made of, on any machine (the real driver or the simulator), the
/// same operations as the lab's C loop (scripts/bench/hmm-bench.c) so the two
/// can be set side by side in one boot.
public enum Benchmarks {
    /// One measured operation.
    public struct Operation: Sendable {
        /// The name the C loop uses too (the lab joins the two on it).
        public let name: String
        /// Pages the buffer needs populated before the loop (the rest of the 2 MiB stays as set up).
        let pages: Int
        let body: @Sendable (Context) throws(DmirrorError) -> Void
    }

    /// What an operation runs against: the buffer (2 MiB, aligned to 2 MiB) and the device.
    /// `@unchecked Sendable`: the mirror buffer is used by the one thread that measures.
    public struct Context: @unchecked Sendable {
        let machine: any Machine
        let device: MirrorDevice
        let address: UInt64
        let mirror: UnsafeMutableRawBufferPointer
        var pageSize: Int { machine.pageSize }
    }

    public static let operations: [Operation] = [
        Operation(name: "read-1", pages: 1) { c throws(DmirrorError) in
            _ = try c.device.read(c.address, npages: 1, into: c.mirror)
        },
        Operation(name: "write-1", pages: 1) { c throws(DmirrorError) in
            _ = try c.device.write(c.address, npages: 1, from: UnsafeRawBufferPointer(c.mirror))
        },
        Operation(name: "snapshot-1", pages: 1) { c throws(DmirrorError) in
            _ = try c.device.perform(.snapshot, addr: c.address, ptr: UInt64(UInt(bitPattern: c.mirror.baseAddress)), npages: 1)
        },
        Operation(name: "snapshot-512", pages: 512) { c throws(DmirrorError) in
            _ = try c.device.perform(.snapshot, addr: c.address, ptr: UInt64(UInt(bitPattern: c.mirror.baseAddress)), npages: 512)
        },
        Operation(name: "migrate-roundtrip-1", pages: 1) { c throws(DmirrorError) in
            _ = try c.device.migrateToDevice(c.address, npages: 1, readBackInto: c.mirror)
            _ = try c.device.migrateToSystem(c.address, npages: 1)
        },
        Operation(name: "migrate-roundtrip-512", pages: 512) { c throws(DmirrorError) in
            _ = try c.device.migrateToDevice(c.address, npages: 512, readBackInto: c.mirror)
            _ = try c.device.migrateToSystem(c.address, npages: 512)
        },
    ]

    /// One operation's result: nanoseconds per call over each repeat.
    public struct Result: Sendable {
        public let operation: String
        public let thp: Bool
        public let iterations: Int
        /// ns per operation in each repeat, sorted.
        public let perRepeat: [Double]
        public var median: Double { perRepeat[perRepeat.count / 2] }
        public let error: String?
    }

    /// Measures every operation with and without THP (`thpModes`), `iterations` calls per
    /// repeat after a warm-up of a tenth of them, `repeats` repeats. Each mode gets a fresh buffer.
    public static func run(on machine: any Machine, unit: Int = 0, thpModes: [Bool], iterations: Int, repeats: Int,
                           only: Set<String> = []) throws(BenchError) -> [Result] {
        let device: MirrorDevice
        do {
            device = try machine.openMirror(unit: unit)
        } catch {
            throw .setup("open /dev/hmm_dmirror\(unit): \(error.named)")
        }
        defer { try? device.close() }
        let pmd = 2 << 20
        let mirror = UnsafeMutableRawBufferPointer.allocate(byteCount: pmd, alignment: 4096)
        defer { mirror.deallocate() }
        mirror.initializeMemory(as: UInt8.self, repeating: 0)
        var results: [Result] = []
        for thp in thpModes {
            for operation in operations where only.isEmpty || only.contains(operation.name) {
                let address = try buffer(machine, size: pmd, thp: thp)
                defer { try? machine.munmap(address, length: pmd) }
                let context = Context(machine: machine, device: device, address: address, mirror: mirror)
                results.append(measure(operation, context, thp: thp, iterations: iterations, repeats: repeats))
            }
        }
        return results
    }

    /// A 2 MiB anonymous buffer aligned to 2 MiB, MADV_HUGEPAGE or MADV_NOHUGEPAGE, populated by the CPU.
    static func buffer(_ machine: any Machine, size: Int, thp: Bool) throws(BenchError) -> UInt64 {
        do {
            let raw = try machine.mmap(address: nil, length: 2 * size, protection: [.read, .write],
                                       flags: [.private, .anonymous], source: .anonymous, offset: 0)
            let aligned = (raw + UInt64(size) - 1) & ~UInt64(size - 1)
            if aligned > raw { try machine.munmap(raw, length: Int(aligned - raw)) }
            let tail = raw + UInt64(2 * size) - (aligned + UInt64(size))
            if tail > 0 { try machine.munmap(aligned + UInt64(size), length: Int(tail)) }
            try machine.madvise(aligned, length: size, advice: thp ? .hugePage : .noHugePage)
            machine.storeInt32s(aligned, count: size / 4) { Int32(truncatingIfNeeded: $0) }
            return aligned
        } catch {
            throw .setup("the 2 MiB buffer: \(error.named)")
        }
    }

    static func measure(_ operation: Operation, _ context: Context, thp: Bool, iterations: Int, repeats: Int) -> Result {
        do throws(DmirrorError) {
            for _ in 0..<max(1, iterations / 10) { try operation.body(context) }
            var perRepeat: [Double] = []
            for _ in 0..<repeats {
                let start = Sys.monotonicNanoseconds()
                for _ in 0..<iterations { try operation.body(context) }
                perRepeat.append(Double(Sys.monotonicNanoseconds() - start) / Double(iterations))
            }
            return Result(operation: operation.name, thp: thp, iterations: iterations, perRepeat: perRepeat.sorted(), error: nil)
        } catch {
            return Result(operation: operation.name, thp: thp, iterations: iterations, perRepeat: [0], error: error.description)
        }
    }
}

/// Why a benchmark could not start.
public enum BenchError: Error, CustomStringConvertible {
    case setup(String)
    public var description: String {
        switch self {
        case .setup(let what): "bench: \(what)"
        }
    }
}

extension Benchmarks {
    /// dmirror's own cost per command on any backend: `MirrorDevice.perform()` (the ABI's
    /// request number, the command struct, the result) down to a file whose ioctl returns
    /// at once. Against an ioctl's time it says how much of a ratio to the C loop is
    /// dmirror's and how much is the kernel's (ns per call, the median of `repeats`).
    public static func userspacePath(abi: ABIGeneration, calls: Int = 100_000, repeats: Int) -> Double {
        let device = MirrorDevice(file: NullDmirrorFile(), abi: abi)
        var perRepeat: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = Sys.monotonicNanoseconds()
            for i in 0..<calls {
                _ = try? device.perform(.read, addr: UInt64(i) << 12, ptr: 0x1000, npages: 1)
            }
            perRepeat.append(Double(Sys.monotonicNanoseconds() - start) / Double(calls))
        }
        return perRepeat.sorted()[perRepeat.count / 2]
    }
}

/// A dmirror file whose ioctl does nothing and succeeds: what is left of a command is dmirror's.
private final class NullDmirrorFile: DmirrorFile {
    let unit = 0
    func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> {
        cmd.cpages = cmd.npages
        return .success(())
    }
    func close() throws(Errno) {}
}
