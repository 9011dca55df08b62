import ABI
import MachineInterface

// lib/test_hmm.c: HMM_DMIRROR_SNAPSHOT. One byte per page, never faulting.

extension Dmirror {
    /// dmirror_snapshot(): 32-page windows, never faulting.
    func snapshot(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let (start, end, _) = commandRange(cmd) else { return .EINVAL }
        var cpages: UInt64 = 0
        defer { cmd.cpages = cpages }
        let ptr = cmd.ptr
        return withMM(orElse: .EINVAL) {
            var uptr = userPointer(ptr)
            var perm = [UInt8](repeating: 0, count: 32)
            var addr = start
            while addr < end {
                let next = min(addr + UInt64(32 * pageSize), end)
                if let e = rangeSnapshot(addr, next, &perm) { return e }
                let n = Int((next - addr) >> pageShift)
                guard let dst = uptr else { return .EFAULT }
                perm.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: n) }
                cpages += UInt64(n)
                uptr = dst + n
                addr = next
            }
            return nil
        }
    }

    /// dmirror_range_snapshot(): a temporary interval notifier over the window,
    /// hmm_range_fault() without faulting, one byte per page.
    private func rangeSnapshot(_ start: UInt64, _ end: UInt64, _ perm: inout [UInt8]) -> Errno? {
        let temporary = MMUIntervalNotifier(mm: mm, start: start, length: end - start) { [unowned self] n, range, seq in
            // dmirror_snapshot_invalidate(): only bump the sequence.
            if range.blockable { self.mutex.lock() } else if !self.mutex.tryLock() { return false }
            defer { self.mutex.unlock() }
            n.setSeq(seq)
            return true
        }
        mm.notifierSubscriptions.insert(temporary)
        defer { mm.notifierSubscriptions.remove(temporary) }
        let range = makeRange(start, end, write: false, fault: false, notifier: temporary)
        var entries: [UInt8] = []
        let ret = mirrorRange(range, .locked(deadline: mm.kernel.milliseconds + 1000)) { range in
            entries = range.hmmPfns.map { mkentry($0).rawValue }
            return nil
        }
        perm.replaceSubrange(0..<entries.count, with: entries)
        return ret
    }

    /// dmirror_mkentry(): how the device sees one page.
    func mkentry(_ entry: HMMPfn) -> SnapshotEntry {
        if entry.flags.contains(.error) { return .error }
        guard entry.flags.contains(.valid), let page = entry.page else { return .none }
        let folio = page.folio
        let local = folio.pgmap?.owner === mdevice
        let kind: SnapshotEntry.Kind
        if folio.isDevicePrivate {
            kind = local ? .devicePrivateLocal : .devicePrivateRemote
        } else if folio.isDeviceCoherent {
            kind = local ? .deviceCoherentLocal : .deviceCoherentRemote
        } else if folio.kind == .zero {
            kind = .zero
        } else {
            kind = .normal
        }
        let shift = entry.mapOrder + mm.pageShift
        let level: SnapshotEntry.Level = entry.mapOrder > 0 && shift == mm.kernel.pmdShift ? .pmd
            : entry.mapOrder > 0 && shift == mm.kernel.pudShift ? .pud : .pte
        return SnapshotEntry(kind: kind, access: entry.flags.contains(.write) ? .write : .read, level: level)
    }
}
