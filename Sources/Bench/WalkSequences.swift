import ABI
import MachineInterface

/// The three sequences the migrate-on-fault series argues from, counted in
/// page-table walks (walk_page_range() and walk_page_range_vma() calls) for a
/// range of present, non-present and zero-page pages:
/// 1. fault with hmm_range_fault(), then migrate with migrate_vma (READ, MIGRATE_TO_DEV);
/// 2. migrate first, fault what did not move, migrate again (MIGRATE_TO_DEV, READ, MIGRATE_TO_DEV);
/// 3. one walk with HMM_PFN_REQ_MIGRATE (the proposed MIGRATE_ON_FAULT_TO_DEV;
///    only the simulator's migrate-on-fault variant has it).
public enum WalkSequences {
    /// How the range's pages start.
    public enum PageState: String, CaseIterable, Sendable {
        /// Written by the CPU: present, writable.
        case present
        /// Never touched: no page table entry.
        case nonPresent = "non-present"
        /// Read by the CPU: the shared zero page.
        case zero
    }

    public struct Sequence: Sendable {
        public let name: String
        /// The cover letter's count.
        public let claimed: Int
        public let commands: [DmirrorCommand]
    }

    public static let sequences: [Sequence] = [
        Sequence(name: "fault, then migrate", claimed: 2, commands: [.read, .migrateToDevice]),
        Sequence(name: "migrate, fault, migrate", claimed: 3, commands: [.migrateToDevice, .read, .migrateToDevice]),
        Sequence(name: "one walk with HMM_PFN_REQ_MIGRATE", claimed: 1, commands: [.migrateOnFaultToDevice]),
    ]

    /// One count: the walks each command of a sequence made, or why it could not run.
    public struct Count: Sendable {
        public let sequence: Sequence
        public let state: PageState
        public let perCommand: [Int]
        public let error: String?
        public var total: Int { perCommand.reduce(0, +) }
    }

    /// Counts every sequence for every page state over `pages` pages (at most 512: one
    /// migration window). Nil if the machine does not count walks.
    public static func count(on machine: any Machine, pages: Int, unit: Int = 0) -> [Count]? {
        guard machine.pageWalkCount() != nil else { return nil }
        var counts: [Count] = []
        for sequence in sequences {
            for state in PageState.allCases {
                counts.append(run(sequence, state, on: machine, pages: pages, unit: unit))
            }
        }
        return counts
    }

    static func run(_ sequence: Sequence, _ state: PageState, on machine: any Machine, pages: Int, unit: Int) -> Count {
        let size = pages * machine.pageSize
        let mirror = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { mirror.deallocate() }
        func failed(_ why: String, _ done: [Int] = []) -> Count {
            Count(sequence: sequence, state: state, perCommand: done, error: why)
        }
        let device: MirrorDevice
        let address: UInt64
        do {
            device = try machine.openMirror(unit: unit)
            address = try machine.mmap(address: nil, length: size, protection: [.read, .write],
                                       flags: [.private, .anonymous], source: .anonymous, offset: 0)
            // Pages of their own: no THP, so the states are per page.
            try machine.madvise(address, length: size, advice: .noHugePage)
        } catch {
            return failed("setup: \(error.named)")
        }
        defer {
            try? machine.munmap(address, length: size)
            try? device.close()
        }
        switch state {
        case .present: machine.storeInt32s(address, count: size / 4) { Int32(truncatingIfNeeded: $0) }
        case .zero: _ = machine.loadBytes(address, count: size)
        case .nonPresent: break
        }
        var perCommand: [Int] = []
        for command in sequence.commands {
            let before = machine.pageWalkCount() ?? 0
            do {
                _ = try device.perform(command, addr: address, ptr: UInt64(UInt(bitPattern: mirror.baseAddress)),
                                       npages: UInt64(pages))
            } catch {
                return failed("\(command.kernelName): \(error.errno?.name ?? error.description)", perCommand)
            }
            perCommand.append((machine.pageWalkCount() ?? 0) - before)
        }
        return Count(sequence: sequence, state: state, perCommand: perCommand, error: nil)
    }
}
