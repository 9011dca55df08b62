import ABI
import MachineInterface

// mm/gup_test.c: /sys/kernel/debug/gup_test. Each ioctl takes the pages of a
// range with get_user_pages*() or pin_user_pages*() and releases them before
// it returns, so what stays visible afterwards is only what taking them did:
// faults (a device-private page comes home, COW is broken for FOLL_WRITE) and,
// for a long-term pin, device-coherent pages moved to system memory. While
// the call runs the references are real, and a migration racing it leaves
// the pages in place.

final class SimGupTestFile: GupTestFile, @unchecked Sendable {
    unowned let process: SimProcess

    init(process: SimProcess) { self.process = process }

    func run(_ operation: GupTestOperation, address: UInt64, size: Int, flags: GupFlags, pagesPerCall: Int) throws(Errno) {
        let mm = process.mm
        let pageSize = UInt64(mm.pageSize)
        let start = address & ~(pageSize - 1)
        let end = address + UInt64(size)
        let npages = Int((end - start + pageSize - 1) / pageSize)
        var foll: FollFlags = []
        if flags.contains(.write) { foll.insert(.write) }
        if flags.contains(.longterm) || operation == .pinLongtermBenchmark { foll.insert(.longterm) }
        let fast: Bool
        switch operation {
        case .gupFastBenchmark: fast = true
        case .pinFastBenchmark: fast = true; foll.insert(.pin)
        case .pinLongtermBenchmark: fast = false; foll.insert(.pin)
        case .gupBasicTest: fast = false
        default: throw .EINVAL
        }
        // The benchmarks take `nr_pages_per_call` pages at a time.
        let batch = max(1, pagesPerCall)
        var done = 0
        while done < npages {
            let n = min(batch, npages - done)
            let first = start + UInt64(done) * pageSize
            let pages = fast ? try mm.getUserPagesFast(first, pages: n, foll) : try mm.getUserPages(first, pages: n, foll)
            mm.putPages(pages)
            done += n
        }
    }

    func close() {}
}
