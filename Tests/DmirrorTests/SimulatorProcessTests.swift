import Testing
import ABI
import MachineInterface
@testable import Simulator
#if canImport(Glibc)
import Glibc
#endif

/// Simulator invariants around processes, exclusive access and THP fallbacks.
@Suite("Simulator processes")
struct SimulatorProcessTests {
    let kernel = SimKernel()
    let machine: any Machine
    let page = 4096

    init() { machine = kernel.spawnProcess() }

    func anon(_ size: Int, _ prot: Protection = [.read, .write]) throws -> UInt64 {
        try machine.mmap(address: nil, length: size, protection: prot, flags: [.private, .anonymous],
                         source: .anonymous, offset: 0)
    }

    func mirror(_ size: Int) -> UnsafeMutableRawBufferPointer {
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        m.initializeMemory(as: UInt8.self, repeating: 0)
        return m
    }

    @Test("fork: a migrated private page is copied on write; the parent keeps its data")
    func forkCOW() throws {
        let npages = 64, size = npages * page
        let p = try anon(size)
        machine.storeInt32s(p, count: size / 4) { Int32($0) }
        let dev = try machine.openMirror(unit: 0)
        let m = mirror(size)
        defer { m.deallocate() }
        let addr = UInt64(UInt(bitPattern: m.baseAddress))
        #expect(try dev.perform(.migrateToDevice, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
        let child = try machine.fork { child in
            // As anon_write_child does: the CPU reads everything first, faulting the
            // device pages back. (hmm_range_fault reports the caller's own read-only
            // device-private entries without faulting, so a WRITE on them is EFAULT.)
            let seen = child.loadInt32s(p, count: size / 4)
            guard seen[100] == 100, seen[size / 4 - 1] == Int32(size / 4 - 1) else { return 2 }
            let cdev = try child.openMirror(unit: 0)
            let buf = UnsafeMutableBufferPointer<Int32>.allocate(capacity: size / 4)
            defer { buf.deallocate() }
            for i in 0..<buf.count { buf[i] = -Int32(i) }
            let r = try cdev.perform(.write, addr: p, ptr: UInt64(UInt(bitPattern: buf.baseAddress)), npages: UInt64(npages))
            guard r.cpages == UInt64(npages), r.faults == 1 else { return 3 }
            guard child.loadInt32(p + 400) == -100 else { return 4 }
            try cdev.file.close()
            return 0
        }
        let status = try child.wait()
        #expect(status == .exited(0))
        #expect(machine.loadInt32(p + 400) == 100)
        try dev.file.close()
    }

    @Test("a killed child never runs; a child that touches PROT_NONE dies of SIGSEGV")
    func childSignals() throws {
        let p = try anon(page, .none)
        let killed = try machine.fork { _ in 0 }
        try killed.kill(.kill)
        #expect(try killed.wait() == .signaled(.kill))
        let faulting = try machine.fork { child in
            _ = child.loadInt32(p)
            return 0
        }
        #expect(try faulting.wait() == .signaled(.segv))
    }

    @Test("exclusive: ATOMIC entries until the CPU touches the pages; WRITE after mprotect is EPERM")
    func exclusive() throws {
        let npages = 8, size = npages * page
        let p = try anon(size)
        machine.storeInt32s(p, count: size / 4) { Int32($0) }
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = mirror(size)
        defer { m.deallocate() }
        let addr = UInt64(UInt(bitPattern: m.baseAddress))
        #expect(try dev.perform(.exclusive, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
        #expect(throws: DmirrorError.failed(.checkExclusive, .EPERM)) {
            try dev.perform(.checkExclusive, addr: p, ptr: addr, npages: UInt64(npages))
        }
        let values = machine.loadInt32s(p, count: size / 4)
        machine.storeInt32s(p, count: size / 4) { values[$0] + 1 }
        #expect(machine.loadInt32(p + 40) == 11)
        #expect(try dev.perform(.checkExclusive, addr: p, ptr: addr, npages: UInt64(npages)).cpages == 0)
        #expect(try dev.perform(.exclusive, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
        try machine.mprotect(p, length: size, protection: .read)
        #expect(throws: DmirrorError.failed(.write, .EPERM)) {
            try dev.perform(.write, addr: p, ptr: addr, npages: UInt64(npages))
        }
    }

    @Test("THP: device-private PMD (0x26), FAIL_ALLOC falls back to 4K; coherent order-0 FAIL_ALLOC is ENOMEM")
    func hugeFallbacks() throws {
        let pmd = machine.pmdPageSize, npages = pmd / page
        for unit in [0, 2] {
            let raw = try anon(2 * pmd)
            let p = (raw + UInt64(pmd - 1)) & ~UInt64(pmd - 1)
            try machine.madvise(p, length: pmd, advice: .hugePage)
            machine.storeInt32s(p, count: pmd / 4) { Int32($0) }
            let dev = try machine.openMirror(unit: unit)
            let m = mirror(pmd)
            defer { m.deallocate() }
            let addr = UInt64(UInt(bitPattern: m.baseAddress))
            #expect(try dev.perform(.migrateToDevice, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
            #expect(try dev.perform(.snapshot, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
            // Private: a PMD-sized device folio. Coherent: the one fixed chunk has no free folios.
            #expect(m[0] == (unit == 0 ? 0x26 : 0x42))
            try dev.perform(.flags, addr: p, ptr: addr, npages: DmirrorFlags.failAlloc.rawValue)
            if unit == 0 {
                #expect(try dev.perform(.migrateToSystem, addr: p, ptr: addr, npages: UInt64(npages)).cpages == UInt64(npages))
            } else {
                #expect(throws: DmirrorError.failed(.migrateToSystem, .ENOMEM)) {
                    try dev.perform(.migrateToSystem, addr: p, ptr: addr, npages: UInt64(npages))
                }
            }
            #expect(machine.loadInt32(p + 8192) == 2048)
            try dev.file.close()
            try machine.munmap(raw, length: 2 * pmd)
        }
    }

    @Test("userfaultfd: READ cannot wait for the handler (EFAULT); READ_UNLOCKED can")
    func userfaultfd() throws {
        let npages = 4, size = npages * page
        let p = try anon(size)
        let uffd = try machine.userfaultfd()
        try uffd.registerMissing(p, length: size)
        let dev = try machine.openMirror(unit: 0)
        defer { try? dev.file.close() }
        let m = mirror(size)
        defer { m.deallocate() }
        let addr = UInt64(UInt(bitPattern: m.baseAddress))
        #expect(throws: DmirrorError.failed(.read, .EFAULT)) {
            try dev.perform(.read, addr: p, ptr: addr, npages: UInt64(npages))
        }
        let stop = try machine.eventfd()
        let handler = try machine.startThread {
            let fill = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            defer { fill.deallocate() }
            fill.initializeMemory(as: UInt8.self, repeating: 0xAB)
            while let fault = try? uffd.waitForFault(stop: stop) {
                try? uffd.copy(to: fault & ~4095, from: UnsafeRawBufferPointer(fill))
            }
        }
        let r = try dev.perform(.readUnlocked, addr: p, ptr: addr, npages: UInt64(npages))
        try stop.signal(1)
        handler.join()
        #expect(r.cpages == UInt64(npages))
        #expect(m.allSatisfy { $0 == 0xAB })
    }
}
