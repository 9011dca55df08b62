import ABI
import MachineInterface
import Syscalls

/// Migration bandwidth by size, set beside a warm memcpy of the same size in
/// the same process, with the peak resident set against what the same work
/// holds on a real kernel and the host page faults per migrated page: what
/// `scripts/bench` prints for the simulator (and, on the real driver, the
/// same numbers for comparison).
public enum MigrationBench {
    /// The device and buffer a row migrates.
    public struct Variant: Sendable, Hashable {
        public let name: String
        /// /dev/hmm_dmirrorN: 0 device-private, 2 device-coherent.
        public let unit: Int
        public let thp: Bool

        public static let all = [
            Variant(name: "private-thp", unit: 0, thp: true),
            Variant(name: "private-nothp", unit: 0, thp: false),
            Variant(name: "coherent-thp", unit: 2, thp: true),
        ]
    }

    public struct Row: Sendable {
        public let variant: Variant
        public let bytes: Int
        /// Median seconds of sys→dev (MIGRATE_TO_DEV, which also reads the range back) and dev→sys.
        public let toDevice: Double
        public let toSystem: Double
        /// Median seconds of a warm memcpy of `bytes`.
        public let memcpy: Double
        /// Peak resident set while migrating, and what the same buffers hold on a real
        /// kernel (the process buffer, the device's memory, the mirror buffer).
        public let peakResident: Int?
        public let realFootprint: Int
        /// Host minor faults per migrated page, in the last repeat.
        public let faultsPerPage: Double
        public let error: String?

        /// Each direction's bandwidth as a fraction of memcpy's.
        public var toDeviceRatio: Double { memcpy / toDevice }
        public var toSystemRatio: Double { memcpy / toSystem }
        public var pages: Int { bytes / 4096 }
    }

    /// A warm memcpy of `bytes` between two buffers of this process: the median of `repeats`
    /// after one that faults the pages in.
    static func memcpySeconds(_ bytes: Int, repeats: Int) -> [Double] {
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        let target = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        defer {
            source.deallocate()
            target.deallocate()
        }
        source.initializeMemory(as: UInt8.self, repeating: 1)
        target.initializeMemory(as: UInt8.self, repeating: 0)
        var seconds: [Double] = []
        for _ in 0..<repeats {
            let start = Sys.monotonicNanoseconds()
            target.copyMemory(from: UnsafeRawBufferPointer(source))
            seconds.append(Double(Sys.monotonicNanoseconds() - start) / 1e9)
        }
        return seconds
    }

    public static func run(on machine: any Machine, sizes: [Int], variants: [Variant] = Variant.all,
                           repeats: Int) -> [Row] {
        var rows: [Row] = []
        for variant in variants {
            for size in sizes {
                rows.append(measure(variant, size, on: machine, repeats: repeats))
            }
        }
        return rows
    }

    static func measure(_ variant: Variant, _ bytes: Int, on machine: any Machine, repeats: Int) -> Row {
        func failed(_ why: String) -> Row {
            Row(variant: variant, bytes: bytes, toDevice: 0, toSystem: 0, memcpy: 0, peakResident: nil,
                realFootprint: 3 * bytes, faultsPerPage: 0, error: why)
        }
        let device: MirrorDevice
        do { device = try machine.openMirror(unit: variant.unit) } catch { return failed("open: \(error.named)") }
        defer { try? device.close() }
        let pages = bytes / machine.pageSize
        let address: UInt64
        do {
            let pmd = 2 << 20
            let raw = try machine.mmap(address: nil, length: bytes + pmd, protection: [.read, .write],
                                       flags: [.private, .anonymous], source: .anonymous, offset: 0)
            address = (raw + UInt64(pmd) - 1) & ~UInt64(pmd - 1)
            try machine.madvise(address, length: bytes, advice: variant.thp ? .hugePage : .noHugePage)
        } catch {
            return failed("mmap: \(error.named)")
        }
        let mirror = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        defer { mirror.deallocate() }
        mirror.initializeMemory(as: UInt8.self, repeating: 0)
        machine.storeInt32s(address, count: bytes / 4) { Int32(truncatingIfNeeded: $0) }
        let copies = memcpySeconds(bytes, repeats: repeats)

        var toDevice: [Double] = []
        var toSystem: [Double] = []
        var faults = 0
        // What the migrations add to the resident set: the peak over the repeats, less
        // what the process held before them (its buffer, the mirror buffer, the runtime).
        let before = Sys.residentBytes() ?? 0
        Sys.resetPeakResident()
        for _ in 0..<repeats {
            let faultsBefore = Sys.minorFaults()
            let t0 = Sys.monotonicNanoseconds()
            do {
                _ = try device.migrateToDevice(address, npages: pages, readBackInto: mirror)
            } catch {
                return failed(error.description)
            }
            let t1 = Sys.monotonicNanoseconds()
            do {
                _ = try device.migrateToSystem(address, npages: pages)
            } catch {
                return failed(error.description)
            }
            let t2 = Sys.monotonicNanoseconds()
            faults = Sys.minorFaults() - faultsBefore
            toDevice.append(Double(t1 - t0) / 1e9)
            toSystem.append(Double(t2 - t1) / 1e9)
        }
        // The buffer and the mirror buffer were resident before; the device's memory is what comes on top.
        let peak = Sys.peakResidentBytes().map { $0 - before + 2 * bytes }
        try? machine.munmap(address, length: bytes)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return Row(variant: variant, bytes: bytes, toDevice: median(toDevice), toSystem: median(toSystem),
                   memcpy: median(copies), peakResident: peak, realFootprint: 3 * bytes,
                   faultsPerPage: Double(faults) / Double(2 * pages), error: nil)
    }
}
