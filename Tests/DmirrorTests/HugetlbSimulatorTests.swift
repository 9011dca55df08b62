import Testing
import ABI
import MachineInterface
@testable import Simulator

/// The simulated hugetlb pool with few pages: reservations at mmap, the fork child's copy
/// without one, and the owner taking a page back (mm/hugetlb.c hugetlb_reserve_pages(),
/// alloc_hugetlb_folio(), hugetlb_wp(), unmap_ref_private()).
@Suite("Simulator: hugetlb reservations")
struct HugetlbSimulatorTests {
    let kernel = SimKernel(configuration: SimConfiguration(hugetlbPoolPages: 2))
    let machine: any Machine
    let huge = 2 << 20

    init() { machine = kernel.spawnProcess() }

    func hugetlb(_ pages: Int, shared: Bool = false) throws(Errno) -> UInt64 {
        try machine.mmap(address: nil, length: pages * huge, protection: [.read, .write],
                         flags: [shared ? .shared : .private, .anonymous, .hugetlb], source: .anonymous, offset: 0)
    }

    @Test("mmap reserves its pages: free_hugepages stays, a mapping past the unreserved pages is ENOMEM")
    func reservations() throws {
        let h = try hugetlb(2)
        #expect(machine.freeHugePages() == 2)
        #expect(throws: Errno.ENOMEM) { _ = try hugetlb(1) }
        machine.storeInt32(h, 1)
        #expect(machine.freeHugePages() == 1)
        // munmap gives back the reservation of the page never faulted, and the page.
        try machine.munmap(h, length: 2 * huge)
        #expect(machine.freeHugePages() == 2)
        let again = try hugetlb(2, shared: true)
        machine.storeInt32(again + UInt64(huge), 5)
        try machine.munmap(again, length: 2 * huge)
        #expect(machine.freeHugePages() == 2)
        _ = try hugetlb(2)
    }

    @Test("a fork child's copy has no reservation: with no page left its write is SIGBUS, the parent's data stays")
    func childWithoutReservation() throws {
        let h = try hugetlb(2)
        machine.storeInt32(h, 11)
        machine.storeInt32(h + UInt64(huge), 12)
        let child = try machine.fork { c in
            c.storeInt32(h, 99)
            return 0
        }
        #expect(try child.wait() == .signaled(.bus))
        #expect(machine.loadInt32(h) == 11)
    }

    @Test("the owner that cannot copy takes the page back from its child (unmap_ref_private)")
    func ownerTakesPageBack() throws {
        let h = try hugetlb(2)
        machine.storeInt32(h, 11)
        machine.storeInt32(h + UInt64(huge), 12)
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { data.deallocate() }
        data.storeBytes(of: Int32(77), as: Int32.self)
        let child = try machine.fork { c in
            // The inherited file writes the parent's page: the parent's copy-on-write finds no page.
            _ = try dev.write(h, npages: 1, from: UnsafeRawBufferPointer(data))
            _ = c.loadInt32(h)
            return 0
        }
        // The child lost the page: its next touch is SIGBUS.
        #expect(try child.wait() == .signaled(.bus))
        #expect(machine.loadInt32(h) == 77)
        #expect(machine.loadInt32(h + UInt64(huge)) == 12)
    }
}
