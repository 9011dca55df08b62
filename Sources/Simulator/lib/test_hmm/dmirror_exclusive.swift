import ABI
import MachineInterface

// lib/test_hmm.c: HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE.

extension Dmirror {
    /// dmirror_exclusive(): make_device_exclusive() per page, stored ATOMIC, then read back.
    func exclusive(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let (start, end, size) = commandRange(cmd) else { return .EINVAL }
        let made = withMM(orElse: .EINVAL) { () -> Errno? in
            mm.mmapLock.readLock()
            defer { mm.mmapLock.readUnlock() }
            var addr = start
            while addr < end {
                switch mm.makeDeviceExclusive(addr, owner: nil) {
                case .failure(let e): return e
                case .success(let page):
                    // dmirror_atomic_map()
                    mutex.withLock { pt[addr >> pageShift] = DmirrorPTEntry(page: page, tag: .atomic) }
                }
                addr += UInt64(pageSize)
            }
            return nil
        }
        if let made { return made }
        // Return the migrated data for verification.
        return readBack(&cmd, start, end, size)
    }

    /// dmirror_check_atomic(): xa_for_each_range() over the entries present, so its cost
    /// is the table's, not the range's (npages may be anything the prologue lets through).
    func checkAtomic(_ start: UInt64, _ end: UInt64) -> Errno? {
        mutex.withLock {
            let first = start >> pageShift, last = end >> pageShift
            if last - first > UInt64(pt.count) {
                guard last > first else { return nil }
                return pt.entries(first, through: last - 1).contains { $0.entry.tag == .atomic } ? .EPERM : nil
            }
            var pfn = first
            while pfn < last {
                if pt[pfn]?.tag == .atomic { return .EPERM }
                pfn += 1
            }
            return nil
        }
    }
}
