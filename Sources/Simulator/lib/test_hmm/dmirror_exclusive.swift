import ABI
import MachineInterface

// lib/test_hmm.c: HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE.

extension Dmirror {
    /// dmirror_exclusive(): make_device_exclusive() per page, stored ATOMIC, then read back.
    func exclusive(_ cmd: inout DmirrorCmd) -> Errno? {
        let size = Int(cmd.npages << pageShift)
        let start = cmd.addr
        let end = start &+ UInt64(size)
        if end < start { return .EINVAL }
        guard mm.mmgetNotZero() else { return .EINVAL }
        mm.mmapLock.readLock()
        var ret: Errno?
        var addr = start
        while ret == nil && addr < end {
            switch mm.makeDeviceExclusive(addr, owner: nil) {
            case .failure(let e): ret = e
            case .success(let page):
                mutex.withLock { pt[addr >> pageShift] = DmirrorPTEntry(page: page, tag: .atomic) }
            }
            addr += UInt64(pageSize)
        }
        mm.mmapLock.readUnlock()
        mm.mmput()
        if let ret { return ret }
        return readBack(&cmd, start, end, size)
    }

    /// dmirror_check_atomic().
    func checkAtomic(_ start: UInt64, _ end: UInt64) -> Errno? {
        mutex.withLock {
            var pfn = start >> pageShift
            while pfn < end >> pageShift {
                if pt[pfn]?.tag == .atomic { return .EPERM }
                pfn += 1
            }
            return nil
        }
    }
}
