import Testing
import ABI
import MachineInterface
@testable import Simulator

/// Simulator invariants, driven through the `Machine` protocol exactly as the
/// suite drives it (the C tests' assertions from hmm-tests.c, section C.2).
@Suite("Simulator")
struct SimulatorTests {
    let kernel = SimKernel()
    var machine: any Machine
    let page = 4096

    init() { machine = kernel.spawnProcess() }

    /// A host-side mirror buffer (buffer->mirror).
    final class Mirror {
        let bytes: UnsafeMutableRawBufferPointer
        init(_ size: Int) {
            bytes = .allocate(byteCount: size, alignment: 4096)
            bytes.initializeMemory(as: UInt8.self, repeating: 0)
        }
        deinit { bytes.deallocate() }
        var address: UInt64 { UInt64(UInt(bitPattern: bytes.baseAddress)) }
        var ints: UnsafeMutableBufferPointer<Int32> { bytes.bindMemory(to: Int32.self) }
    }

    func cmd(_ dev: MirrorDevice, _ c: DmirrorCommand, _ addr: UInt64, _ mirror: Mirror, _ npages: Int)
        -> Result<CommandResult, Errno> {
        do { return .success(try dev.perform(c, addr: addr, ptr: mirror.address, npages: UInt64(npages))) }
        catch { return .failure(error.errno ?? .EIO) }
    }

    func anon(_ size: Int, _ prot: Protection = [.read, .write], shared: Bool = false) throws -> UInt64 {
        try machine.mmap(address: nil, length: size, protection: prot,
                         flags: [shared ? .shared : .private, .anonymous], source: .anonymous, offset: 0)
    }

    @Test("prologue: npages 0, unaligned addr, wrap and unknown requests are EINVAL; struct not copied back")
    func prologue() throws {
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = Mirror(page)
        for (addr, npages) in [(UInt64(0x10000), UInt64(0)), (0x10001, 1), (UInt64.max & ~0xfff, 2)] {
            var c = DmirrorCmd(addr: addr, ptr: m.address, npages: npages, cpages: 77, faults: 88)
            let r = dev.file.ioctl(request: ABIGeneration.v7_3.request(for: .read)!, &c)
            #expect(r.failureValue == .EINVAL)
            #expect(c.cpages == 77 && c.faults == 88)
        }
        var c = DmirrorCmd(addr: 0x10000, ptr: m.address, npages: 1)
        #expect(dev.file.ioctl(request: ABIGeneration.ioctlRequest(nr: 0x2a), &c).failureValue == .EINVAL)
        #expect(dev.file.ioctl(request: 0x1234, &c).failureValue == .EINVAL)
        #expect(throws: Errno.ENOENT) { _ = try machine.openMirror(unit: 4) }
    }

    @Test("anon_read: cpages = npages, faults = 1, zero pages read as 0")
    func anonRead() throws {
        let npages = 1024, size = npages * page
        let p = try anon(size)
        machine.storeInt32s(p + UInt64(2 * page), count: (size - 2 * page) / 4) { Int32($0 + 2 * page / 4) }
        try machine.mprotect(p, length: size, protection: .read)
        #expect(machine.loadInt32(p + UInt64(page)) == 0)
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = Mirror(size)
        let r = try cmd(dev, .read, p, m, npages).get()
        #expect(r.cpages == UInt64(npages) && r.faults == 1)
        for i in 0..<(2 * page / 4) where m.ints[i] != 0 { Issue.record("mirror[\(i)]"); break }
        for i in (2 * page / 4)..<(size / 4) where m.ints[i] != Int32(i) { Issue.record("mirror[\(i)]"); break }
        // Everything is mirrored now: no fault round.
        #expect(try cmd(dev, .read, p, m, npages).get().faults == 0)
    }

    @Test("anon_read_prot: PROT_NONE is EFAULT and nothing is copied")
    func anonReadProt() throws {
        let npages = 16, size = npages * page
        let p = try anon(size)
        machine.storeInt32s(p, count: size / 4) { Int32($0) }
        try machine.mprotect(p, length: size, protection: .none)
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = Mirror(size)
        for i in 0..<(size / 4) { m.ints[i] = -Int32(i) }
        #expect(cmd(dev, .read, p, m, npages).failureValue == .EFAULT)
        #expect(m.ints[5] == -5)
    }

    @Test("anon_write_prot: EPERM on a read-only VMA, then a write after mprotect")
    func anonWriteProt() throws {
        let npages = 16, size = npages * page
        let p = try anon(size, .read)
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = Mirror(size)
        let r = try cmd(dev, .read, p, m, 1).get()
        #expect(r.cpages == 1 && r.faults == 1)
        for i in 0..<(size / 4) { m.ints[i] = Int32(i) }
        #expect(cmd(dev, .write, p, m, npages).failureValue == .EPERM)
        #expect(machine.loadInt32(p + 16) == 0)
        try machine.mprotect(p, length: size, protection: [.read, .write])
        let w = try cmd(dev, .write, p, m, npages).get()
        #expect(w.cpages == UInt64(npages) && w.faults == 1)
        #expect(machine.loadInt32(p + 16) == 4)
    }

    @Test("migrate, fault half back, migrate again; shared anon is ENOENT")
    func migrateFault() throws {
        let npages = 1024, size = npages * page
        let p = try anon(size)
        machine.storeInt32s(p, count: size / 4) { Int32($0) }
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = Mirror(size)
        #expect(try cmd(dev, .migrateToDevice, p, m, npages).get().cpages == UInt64(npages))
        #expect(try machine.pagemapEntry(p) & Pagemap.swap != 0)
        let half = machine.loadInt32s(p, count: size / 8)
        #expect(half[1000] == 1000)
        let again = try cmd(dev, .migrateToDevice, p, m, npages).get()
        #expect(again.cpages == UInt64(npages) && again.faults == 0)
        #expect(m.ints[size / 4 - 1] == Int32(size / 4 - 1))

        let s = try anon(size, shared: true)
        machine.storeInt32s(s, count: size / 4) { Int32($0) }
        #expect(cmd(dev, .migrateToDevice, s, m, npages).failureValue == .ENOENT)
    }

    @Test("snapshot of assorted pages on two private devices")
    func snapshot() throws {
        let p = try anon(7 * page, .none)
        let P = UInt64(page)
        try machine.munmap(p + P, length: page)
        try machine.mprotect(p + 2 * P, length: page, protection: .read)
        #expect(machine.loadInt32(p + 2 * P) == 0)
        try machine.mprotect(p + 3 * P, length: page, protection: [.read, .write])
        machine.storeInt32(p + 3 * P, 3)
        try machine.mprotect(p + 3 * P, length: page, protection: .read)
        try machine.mprotect(p + 4 * P, length: 3 * page, protection: [.read, .write])
        machine.storeInt32(p + 4 * P, 3)
        let d0 = try machine.openMirror(unit: 0), d1 = try machine.openMirror(unit: 1)
        defer { try? d0.file.close(); try? d1.file.close() }
        let m = Mirror(page)
        #expect(try cmd(d0, .migrateToDevice, p + 5 * P, m, 1).get().cpages == 1)
        #expect(try cmd(d1, .migrateToDevice, p + 6 * P, m, 1).get().cpages == 1)
        #expect(try cmd(d0, .snapshot, p, m, 7).get().cpages == 7)
        #expect(Array(m.bytes.prefix(7)) == [0xFF, 0xFF, 0x11, 0x01, 0x02, 0x22, 0x00])
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
