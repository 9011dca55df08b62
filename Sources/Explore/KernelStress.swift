import ABI
import MachineInterface
import Synchronization
import Syscalls

/// Concurrent checks sized for the real driver: races whose window on a kernel
/// is too narrow for the catalogue's four-page scenarios to meet by chance.
extension Catalogue {
    /// dmirror_fault() walks and commits a range 32 pages at a time (its pfns[32]).
    static let faultChunk = 32
    /// read-retry-stress's READ on the kernel: 32 chunks.
    static let stressTarget = 1024
    /// The same on the simulator, whose explorer chooses the interleaving itself:
    /// a small range keeps a schedule cheap.
    static let simTarget = 64

    /// A thread READs 1024 pages it never mirrored while another discards them all
    /// (MADV_DONTNEED) a random 2-8 ms after the READ was issued (its bounce buffer
    /// takes the first milliseconds); then a READ of
    /// each 32-page chunk.
    ///
    /// dmirror_fault() takes the range 32 pages at a time: mmu_interval_read_begin(),
    /// hmm_range_fault(), then dmirror->mutex and mmu_interval_read_retry() before it
    /// commits the chunk's pfns to the mirror's page table. The DONTNEED's
    /// invalidate callback takes the same mutex and bumps the notifier sequence
    /// before the CPU page tables are zapped and the pages freed. When the callback
    /// runs while a chunk is between its walk and its commit, only the retry check
    /// keeps the chunk's pfns (pages about to be freed) out of the mirror. Without
    /// it the chunk stays mapped to freed pages: nothing invalidates it again (the
    /// CPU ptes are gone), and the last look's READ of that chunk finds every entry
    /// present, faults nothing and returns the old data, where the stock driver
    /// returns zero pages. (A READ per chunk: a READ that meets a missing entry
    /// faults the rest of its range and would overwrite the stale entries.)
    ///
    /// On the kernel a repetition meets the window by timing: the READ's buffer is
    /// faulted in before, the DONTNEED waits for the READ to be issued and then
    /// spins a random while (a spin, not a sleep: a sleeping vCPU under TCG wakes
    /// late); `--repeat` sets how often it tries. The READ's own answer is not part
    /// of the outcome (it depends on where the DONTNEED landed). On the simulator
    /// the range is 64 pages and the explorer interleaves the tasks.
    static let readRetryStress = ConcurrentScenario(
        name: "read-retry-stress",
        summary: "HMM_DMIRROR_READ of 1024 unmirrored pages races MADV_DONTNEED of all of them 2-8 ms after "
            + "it; then READ each 32-page chunk",
        pages: stressTarget,
        setup: {
            StressGate.reset()
            $0.fill(pages: Array(0..<$0.stressTarget))
        },
        tasks: [
            .init("A") { $0.unrecordedRead(0, $0.stressTarget, gate: .target) },
            .init("C") {
                $0.awaitGate(.target)
                $0.spin(microseconds: 2000, upTo: 8000)
                $0.dontNeed(0, $0.stressTarget)
            },
        ],
        final: { context in
            for chunk in stride(from: 0, to: context.stressTarget, by: faultChunk) {
                context.command(.read, chunk, faultChunk)
            }
        },
        expectations: [
            .init(because: "the stock driver commits a chunk only when mmu_interval_read_retry() says the walk "
                + "still holds, so every last READ returns zero pages"),
            .init(variants: ["no-read-retry"], finding: "page table commit without read_retry",
                  because: "the chunk is committed at a sequence no mmu_interval_read_retry() confirmed"),
        ])
}

/// The moment a stress task issues its command, for the task that races it (on the
/// kernel only: each repetition is a process of its own, so a process-wide flag).
enum StressGate: Int {
    /// The READ was issued.
    case target

    private static let opened = Atomic<Int>(0)
    static func reset() { opened.store(0, ordering: .sequentiallyConsistent) }
    func open() { _ = Self.opened.bitwiseOr(1 << rawValue, ordering: .sequentiallyConsistent) }
    var isOpen: Bool { Self.opened.load(ordering: .sequentiallyConsistent) & (1 << rawValue) != 0 }
}

extension TaskContext {
    /// Whether the machine is the simulator (whose tasks are scheduled by the
    /// explorer: a task must not spin waiting for another).
    private var simulated: Bool { machine is any MachineIntrospection }

    /// read-retry-stress's READ, in pages, on this machine.
    var stressTarget: Int { simulated ? Catalogue.simTarget : Catalogue.stressTarget }

    /// On the kernel: spins a random `least`..<`bound` microseconds (the machine's
    /// random source). On the simulator: a sleep, which is a scheduling point.
    func spin(microseconds least: UInt32, upTo bound: UInt32) {
        let span = max(bound, least + 1) - least
        let nanoseconds = UInt64(least + machine.random() % span) * 1000
        guard !simulated else { return machine.sleep(nanoseconds: nanoseconds) }
        let deadline = Sys.monotonicNanoseconds() + nanoseconds
        while Sys.monotonicNanoseconds() < deadline {}
    }

    /// HMM_DMIRROR_READ into a buffer faulted in beforehand, opening `gate` just
    /// before the ioctl; its answer is not recorded.
    func unrecordedRead(_ page: Int, _ count: Int, gate: StressGate?) {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count * pageSize, 1), alignment: 8)
        defer { bytes.deallocate() }
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        gate?.open()
        _ = try? devices[0]?.perform(.read, addr: run.base + UInt64(page * pageSize),
                                     ptr: UInt64(UInt(bitPattern: bytes.baseAddress)), npages: UInt64(count))
    }

    /// On the kernel: spins (at most 2 s) until `gate` opened.
    func awaitGate(_ gate: StressGate) {
        guard !simulated else { return }
        let deadline = Sys.monotonicNanoseconds() + 2_000_000_000
        while !gate.isOpen && Sys.monotonicNanoseconds() < deadline {}
    }
}
