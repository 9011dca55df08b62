import ABI
import MachineInterface
import Linux
#if canImport(Glibc)
import Glibc
#endif

/// Conformance scenarios that fork. On Linux the child is a real process
/// forked from the (multi-threaded) test process, so child bodies stay
/// minimal: loads and stores through the machine, usleep, a status.
extension ConformanceScenarios {
    /// Spins (Linux) until the int at `address` becomes `value`; the simulator's
    /// child runs at wait(), after the parent already stored it.
    static func waitForValue(_ c: any Machine, _ address: UInt64, _ value: Int32) -> Bool {
        for _ in 0..<10_000 {
            if c.loadInt32(address) == value { return true }
            usleep(1000)
        }
        return false
    }

    /// In a real child, SIGSEGV/SIGBUS kill it outright instead of running
    /// the Swift runtime's backtracer (the simulator's child is a thread of this process: leave it).
    static func quietFatalSignals(_ c: any Machine) {
        guard c is LinuxMachine else { return }
        signal(SIGSEGV, SIG_DFL)
        signal(SIGBUS, SIG_DFL)
    }

    /// Private anonymous COW both ways and MAP_SHARED|MAP_ANONYMOUS sharing both ways.
    static func forkMemory(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let priv = try log.anon(2)
        defer { try? m.munmap(priv, length: 2 * page) }
        let shared = try log.anon(2, shared: true)
        defer { try? m.munmap(shared, length: 2 * page) }
        let sync = try log.anon(1, shared: true)
        defer { try? m.munmap(sync, length: page) }
        log.fill(priv, pages: 2, tag: 1)
        log.fill(shared, pages: 2, tag: 1)
        // The child reads what it checks first in the parent, so nothing is lazily set up after fork.
        _ = m.loadInt32(sync)
        let child = try log.must("fork") { () throws(Errno) -> any ChildProcess in
            try m.fork { c in
                guard waitForValue(c, sync, 1) else { return 9 }
                // Private: the parent's write after fork is not visible.
                guard c.loadInt32(priv + 4) == 1_000_001 else { return 10 }
                // Shared: the parent's write after fork is visible.
                guard c.loadInt32(shared + 4) == -6 else { return 11 }
                c.storeInt32(priv + 4, 77)
                guard c.loadInt32(priv + 4) == 77 else { return 12 }
                c.storeInt32(shared + P + 8, 88)
                c.storeInt32(priv + P + 8, 99)
                return 0
            }
        }
        m.storeInt32(priv + 4, -5)
        m.storeInt32(shared + 4, -6)
        m.storeInt32(sync, 1)
        log.call("wait") { () throws(Errno) in log.note("child: \(try child.wait())") }
        log.note("parent private \(m.loadInt32(priv + 4)) page 1 \(log.pattern(priv + P, pages: 1, tag: 1, firstPage: 1))")
        log.note("parent shared \(m.loadInt32(shared + 4)) page 1 int 2 = \(m.loadInt32(shared + P + 8))")
        log.note("pagemap private \(log.pagemapBits(priv, pages: 2)) shared \(log.pagemapBits(shared, pages: 2))")
        return log.lines
    }

    /// How children end: exit codes, a throwing body, SIGKILL before wait, a fatal fault.
    static func forkExitStatus(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page
        func run(_ label: String, _ body: @escaping (any Machine) throws -> Int32) {
            do {
                let child = try m.fork(body)
                log.note("\(label): \(try child.wait())")
            } catch {
                log.note("\(label): \(error)")
            }
        }
        run("exit 0") { _ in 0 }
        run("exit 7") { _ in 7 }
        run("exit 300") { _ in 300 }
        run("throws") { _ in throw Errno.EIO }

        do {
            let child = try m.fork { _ in
                while true { pause() }
            }
            log.call("kill") { () throws(Errno) in try child.kill(.kill) }
            log.call("wait") { () throws(Errno) in log.note("killed before wait: \(try child.wait())") }
        } catch {
            log.note("kill: \(error)")
        }

        // A store to a read-only page: SIGSEGV ends the child, not us.
        let ro = try log.anon(1, .read)
        defer { try? m.munmap(ro, length: page) }
        _ = m.loadInt32(ro)
        run("store to read-only") { c in
            quietFatalSignals(c)
            c.storeInt32(ro, 1)
            return 0
        }
        log.note("parent reads \(m.loadInt32(ro))")
        return log.lines
    }

    /// mprotect over [mapped][hole][mapped] fails with ENOMEM; which part changed
    /// protection is observed by children storing to each side.
    static func mprotectAcrossHole(_ m: any Machine) throws -> [String] {
        let log = ConformanceLog(m)
        let page = log.page, P = log.pageU
        let res = try log.anon(3)
        log.fill(res, pages: 3, tag: 1)
        log.call("munmap middle") { () throws(Errno) in try m.munmap(res + P, length: page) }
        defer {
            try? m.munmap(res, length: page)
            try? m.munmap(res + 2 * P, length: page)
        }
        log.call("mprotect read across the hole") { () throws(Errno) in try m.mprotect(res, length: 3 * page, protection: .read) }
        for (label, address) in [("first", res), ("last", res + 2 * P)] {
            do {
                let child = try m.fork { c in
                    quietFatalSignals(c)
                    c.storeInt32(address, 5)
                    return 0
                }
                log.note("store to the \(label) page: \(try child.wait())")
            } catch {
                log.note("fork: \(error)")
            }
        }
        log.note("data \(log.pattern(res, pages: 1, tag: 1)) \(log.pattern(res + 2 * P, pages: 1, tag: 1, firstPage: 2))")
        return log.lines
    }
}
