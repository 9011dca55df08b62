import ABI
import MachineInterface

// The migrate-on-fault series' handler for test_hmm (Mika Penttilä, not merged):
// HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV faults the range in and collects it for
// migration in one hmm_range_fault() walk (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_MIGRATE),
// migrates it to device memory, and maps it into the mirror, retrying on the
// notifier sequence. Two shapes, each a simulator variant:
// - migrate-on-fault: the later postings; mmap_read_lock is held for the whole
//   operation and the walk runs under it;
// - migrate-on-fault-nested-lock: the RFC's do_fault_and_migrate(), which takes
//   mmap_read_lock and then calls dmirror_range_fault(), which takes it again.

extension Dmirror {
    /// dmirror_fault_and_migrate_to_device(): PTRS_PER_PTE-page windows (as the
    /// migration), each mirrored through the shared retry loop; then the range is
    /// read back from `pt` like MIGRATE_TO_DEV.
    func migrateOnFaultToDevice(_ cmd: inout DmirrorCmd) -> Errno? {
        guard let (start, end, size) = commandRange(cmd) else { return .EINVAL }
        let nested = mm.kernel.has(.migrateOnFaultNestedLock)
        let migrated = withMM(orElse: .EINVAL) { () -> Errno? in
            mm.mmapLock.readLock()
            defer { mm.mmapLock.readUnlock() }
            return forEachWindow(start, end) { _, addr, next in
                let deadline = mm.kernel.milliseconds + 1000
                let walk: RangeWalk = nested ? .locked(deadline: deadline) : .callerLocked(deadline: deadline)
                return mirrorRange(makeRange(addr, next, write: false, migrate: true), walk, commit: mapFaultedAndMigrated)
            }
        }
        if let migrated { return migrated }
        return readBack(&cmd, start, end, size)
    }

    /// The commit of a migrating walk, under `mutex` after read_retry: the pages that
    /// moved are mapped as dmirror_migrate_finalize_and_map() maps them, the ones that
    /// stayed (pinned, or not anonymous) as dmirror_do_fault() would.
    private func mapFaultedAndMigrated(_ range: HMMRange) -> Errno? {
        range.notifier.willCommit(range.notifierSeq, under: mutex)
        guard let args = range.migrate else { return .EINVAL }
        mapMigrated(args)
        var pfn = range.start >> pageShift
        for (i, hmm) in range.hmmPfns.enumerated() {
            defer { pfn += 1 }
            if args.src[i].flags.contains(.migrate) && args.dst[i].page != nil { continue }
            guard let page = hmm.page, hmm.flags.contains(.valid) else { continue }
            pt[pfn] = DmirrorPTEntry(page: mdevice.backingPage(page), tag: hmm.flags.contains(.write) ? .write : .read)
        }
        return nil
    }
}
