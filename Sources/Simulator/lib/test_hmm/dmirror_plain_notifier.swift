import ABI
import MachineInterface

// The plain-notifier-device-lock variant: a dmirror that mirrors the way drivers
// did before interval notifiers (amdgpu's amdgpu_mn and KVM are its models). It
// subscribes to every invalidation of the mm with two plain mmu_notifiers, each
// obeying c2655835fd8c's rule that a start which may fail has no end:
// - the lock notifier: takes the device lock (trylock when it may not block,
//   else -EAGAIN), erases the range from `pt`, bumps the driver's sequence;
// - the counter: counts invalidations between start and end (never fails), so a
//   fault can wait until none is in flight, as KVM's mmu_invalidate_in_progress.
// Faults go through get_user_pages() and commit under the device lock when
// nothing moved. MIGRATE_TO_DEV holds the device lock across migrate_vma_setup()
// "to block page-table downgrades", and the setup's own invalidation then takes
// the same lock: the deadlock described on linux-mm when migration and mirroring
// are done in two different ways.

/// The plain-notifier mirror of one dmirror file.
///
/// `@unchecked Sendable`: only the running task touches it.
final class PlainNotifierMirror: @unchecked Sendable {
    /// &mdevice->devlock: serializes the driver's page-table updates with invalidations.
    let deviceLock: KernelLock
    /// Bumped by every invalidation (under `deviceLock`): a fault that read an older one retries.
    var sequence: UInt64 = 0
    /// Invalidations between their start and end.
    var inProgress = 0
    /// Faults waiting for `inProgress` to reach 0.
    let idle: WaitQueue
    private(set) var lockNotifier: MMUNotifier!
    private(set) var counter: MMUNotifier!

    init(_ dmirror: Dmirror) {
        let scheduler = dmirror.mm.kernel.scheduler
        deviceLock = KernelLock(scheduler, .deviceLock)
        idle = WaitQueue(scheduler, "devlock invalidations in progress")
        let name = "\(dmirror.mdevice) (plain mmu_notifier)"
        lockNotifier = MMUNotifier(
            name: name, mappings: { [unowned dmirror] start, end in dmirror.mappedAddresses(start, end) },
            start: { [unowned self, unowned dmirror] range in
                if range.blockable { self.deviceLock.lock() } else if !self.deviceLock.tryLock() { return false }
                defer { self.deviceLock.unlock() }
                dmirror.mutex.withLock { dmirror.erase(range.start, range.end) }
                self.sequence += 1
                return true
            }, end: nil)
        counter = MMUNotifier(
            name: name + "'s invalidation counter",
            start: { [unowned self] _ in
                self.inProgress += 1
                return true
            }, end: { [unowned self] _ in
                self.inProgress -= 1
                if self.inProgress == 0 { self.idle.wakeAll() }
            })
        dmirror.mm.notifierSubscriptions.register(counter)
        dmirror.mm.notifierSubscriptions.register(lockNotifier)
    }

    func unregister(_ mm: MMStruct) {
        mm.notifierSubscriptions.unregister(lockNotifier)
        mm.notifierSubscriptions.unregister(counter)
    }
}

extension Dmirror {
    /// The fault of READ, WRITE and READ_UNLOCKED in the plain-notifier driver: per
    /// 32-page window, wait until no invalidation is in flight, get_user_pages(),
    /// then map the pages under the device lock if the sequence did not move.
    func plainFault(_ plain: PlainNotifierMirror, _ start: UInt64, _ end: UInt64, write: Bool) -> Errno? {
        withMM(orElse: .EFAULT) {
            var addr = start
            while addr < end {
                let next = min(addr + UInt64(32 * pageSize), end)
                let npages = Int((next - addr) >> pageShift)
                while true {
                    mm.kernel.scheduler.wait(on: [plain.idle], "plainFault", reason: "the plain mirror's invalidations to end") {
                        plain.inProgress == 0
                    }
                    let seq = plain.deviceLock.withLock { plain.sequence }
                    let pages: [PageRef]
                    switch Result(catching: { () throws(Errno) in try mm.getUserPages(addr, pages: npages, write ? [.write] : []) }) {
                    case .success(let taken): pages = taken
                    case .failure(let error): return error
                    }
                    plain.deviceLock.lock()
                    if plain.inProgress > 0 || plain.sequence != seq {
                        plain.deviceLock.unlock()
                        mm.putPages(pages)
                        mm.kernel.scheduler.retried("the plain mirror's fault of [0x\(String(addr, radix: 16)), 0x\(String(next, radix: 16)))")
                        continue
                    }
                    mutex.withLock {
                        for (i, page) in pages.enumerated() {
                            pt[(addr >> pageShift) + UInt64(i)] = DmirrorPTEntry(page: page, tag: write ? .write : .read)
                        }
                    }
                    plain.deviceLock.unlock()
                    mm.putPages(pages)
                    break
                }
                addr = next
            }
            return nil
        }
    }
}
