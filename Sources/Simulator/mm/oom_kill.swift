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
    /// exit has begun (find_lock_task_mm() finds no thread with an mm after exit_mm()),
    /// EINVAL while it is not dying. (A child in do_exit() before exit_mm(), which
    /// task_will_free_mem() would reap, is not modelled: no scheduling point lies there.)
    func releaseMemory() throws(Errno) {
        if task.isFinished || process.mmDetached { throw .ESRCH }
        guard task.killed else { throw .EINVAL }
        let mm = process.mm
        guard mm.mmgetNotZero() else { throw .ESRCH }
        defer { mm.mmput() }
        mm.mmapLock.readLock()
        defer { mm.mmapLock.readUnlock() }
        if !mm.oomReapTaskMM() { throw .EAGAIN }
    }
}
