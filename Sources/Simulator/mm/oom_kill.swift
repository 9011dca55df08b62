import ABI

// mm/oom_kill.c: __oom_reap_task_mm() and process_mrelease(2). The reaper frees
// a dying process's memory without waiting for anything, so its invalidations
// are non-blockable: a notifier that would have to sleep says -EAGAIN, and the
// reaper skips that VMA without calling invalidate_range_end().

extension MMStruct {
    /// __oom_reap_task_mm(): false when some VMA could not be reaped. Caller holds
    /// mmap_lock for read.
    func oomReapTaskMM() -> Bool {
        var reaped = true
        for vma in vmas {
            if vma.isHugetlb || vma.flags.contains(.pfnmap) { continue }
            // Only private memory: shared pages may still be in use by others.
            guard vma.isAnonymous || !vma.isShared else { continue }
            var range = MMUNotifierRange(mm: self, start: vma.start, end: vma.end, event: .unmap, owner: nil,
                                         blockable: false)
            if notifierSubscriptions.invalidateRangeStart(&range) != nil {
                reaped = false
                continue
            }
            ptl.withLock { zapPageRangeLocked(vma.start, vma.end) }
            notifierSubscriptions.invalidateRangeEnd(range)
        }
        return reaped
    }
}

extension SimChild {
    /// process_mrelease(): reap a child that a fatal signal is ending. ESRCH once its
    /// exit has detached its mm (find_lock_task_mm() finds none), EINVAL while it is not
    /// dying (task_will_free_mem(); the kernel's "the work has been done already" cannot
    /// hold here, as only exit_mmap(), after the detach, sets MMF_OOM_SKIP). The reaper holds the mm by mmgrab(), not by a user,
    /// so the child's exit_mmap() may run beside it: its mmu_notifier_release() takes the
    /// driver's lock that the reaper's non-blocking invalidate then fails to take
    /// (EAGAIN), and once exit_mmap() set MMF_OOM_SKIP the reaper has nothing to do.
    /// (A child in do_exit() before exit_mm(), which task_will_free_mem() would reap, is
    /// not modelled: no scheduling point lies there.)
    func releaseMemory() throws(Errno) {
        // Every way a child ends goes through SimProcess.exit(), which detaches the mm first.
        if process.mmDetached { throw .ESRCH }
        guard task.killed else { throw .EINVAL }
        let mm = process.mm
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        if !mm.oomSkip && !mm.oomReapTaskMM() { throw .EAGAIN }
    }
}
