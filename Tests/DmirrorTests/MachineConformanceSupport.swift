import Testing
import ABI
import MachineInterface
import Linux
import Simulator
#if canImport(Glibc)
import Glibc
#endif

// Machine conformance: the same scenario runs on this process's real kernel
// (`LinuxMachine`) and on a fresh simulated process; the two observation logs
// must be equal. The host kernel is the oracle for the plain mm semantics
// (mmap, mremap, madvise, fork, files, pagemap, userfaultfd, hugetlb); the
// driver half is checked elsewhere (KernelTrace). Never open a mirror here:
// the host has no test_hmm.
//
// A log holds results, errnos, data values and masked pagemap bits, but never
// an address: addresses are logged as page offsets from a mapping the
// scenario made.

/// One scenario: operations through the `Machine` protocol, returning the log.
typealias ConformanceScenario = (any Machine) throws -> [String]

/// Runs `scenario` on the host kernel and on a fresh simulator process and
/// records an issue showing both logs when they differ.
func expectConformance(_ scenario: ConformanceScenario,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
    let linux = try scenario(LinuxMachine(abi: .newest))
    let sim = try scenario(SimKernel().spawnProcess())
    if getenv("DMIRROR_CONFORMANCE_LOG") != nil {
        print(linux.joined(separator: "\n"))
        print("--- sim ---\n" + sim.joined(separator: "\n"))
    }
    if linux != sim {
        Issue.record(Comment(rawValue: conformanceDiff(linux: linux, sim: sim)), sourceLocation: sourceLocation)
    }
}

/// Both logs side by side, differing lines marked with `!`.
func conformanceDiff(linux: [String], sim: [String]) -> String {
    var text = "the simulator disagrees with the host kernel:\n"
    for i in 0..<max(linux.count, sim.count) {
        let l = i < linux.count ? linux[i] : "<missing>"
        let s = i < sim.count ? sim[i] : "<missing>"
        text += l == s ? "    \(l)\n" : "  ! linux: \(l)\n  !   sim: \(s)\n"
    }
    return text
}

/// The observation log of one scenario run, plus helpers that keep addresses out of it.
final class ConformanceLog {
    let machine: any Machine
    private(set) var lines: [String] = []

    init(_ machine: any Machine) { self.machine = machine }

    var page: Int { machine.pageSize }
    var pageU: UInt64 { UInt64(machine.pageSize) }

    func note(_ line: String) { lines.append(line) }

    /// Runs a system call, logging "label: ok" / "label: ok <value>" or "label: EINVAL".
    @discardableResult
    func call<T>(_ label: String, _ body: () throws(Errno) -> T) -> T? {
        do {
            let value = try body()
            lines.append("\(label): ok")
            return value
        } catch {
            lines.append("\(label): \(error.name)")
            return nil
        }
    }

    /// Like `call`, but the caller needs the value: a failure aborts the scenario (logged first).
    func must<T>(_ label: String, _ body: () throws(Errno) -> T) throws -> T {
        do {
            return try body()
        } catch {
            lines.append("\(label): FAILED \(error.name)")
            throw error
        }
    }

    /// A private anonymous mapping anywhere.
    func anon(_ pages: Int, _ protection: Protection = [.read, .write], shared: Bool = false) throws -> UInt64 {
        try must("mmap anon \(pages)p") {
            () throws(Errno) -> UInt64 in
            try machine.mmap(address: nil, length: pages * page, protection: protection,
                             flags: [shared ? .shared : .private, .anonymous], source: .anonymous, offset: 0)
        }
    }

    /// Offset of `address` from `base` in pages ("+3p"), or "outside" style text for logs.
    func offset(_ address: UInt64, from base: UInt64) -> String {
        guard address >= base else { return "-\((base - address) / pageU)p" }
        let d = address - base
        return d % pageU == 0 ? "+\(d / pageU)p" : "+\(d)B"
    }

    /// Whether a VMA covers the page at `address`: mprotect(PROT_READ|PROT_WRITE)
    /// succeeds on a mapped page and fails with ENOMEM on a hole. (The probe makes
    /// the page read-write; scenarios only probe pages whose protection they do not need.)
    func isMapped(_ address: UInt64) -> Bool {
        do {
            try machine.mprotect(address, length: page, protection: [.read, .write])
            return true
        } catch {
            return false
        }
    }

    /// "X" for each mapped page, "." for each hole, over `pages` pages from `base`.
    func mapBits(_ base: UInt64, pages: Int) -> String {
        String((0..<pages).map { isMapped(base + UInt64($0) * pageU) ? "X" : "." })
    }

    /// Pagemap present/swap bits only (as root, Linux also fills the PFN and other flags).
    func pagemapBits(_ address: UInt64) -> String {
        do {
            let e = try machine.pagemapEntry(address)
            return (e & Pagemap.present != 0 ? "P" : "-") + (e & Pagemap.swap != 0 ? "S" : "-")
        } catch {
            return error.name
        }
    }

    /// Present/swap bits of `pages` consecutive pages.
    func pagemapBits(_ base: UInt64, pages: Int) -> String {
        (0..<pages).map { pagemapBits(base + UInt64($0) * pageU) }.joined(separator: " ")
    }

    /// The first int of each of `pages` pages.
    func firstInts(_ base: UInt64, pages: Int) -> String {
        (0..<pages).map { String(machine.loadInt32(base + UInt64($0) * pageU)) }.joined(separator: ",")
    }

    /// Fills each page with ints `tag * 1_000_000 + page * 1000 + i % 1000`.
    func fill(_ base: UInt64, pages: Int, tag: Int32) {
        let perPage = page / 4
        machine.storeInt32s(base, count: pages * perPage) { i in
            tag * 1_000_000 + Int32(i / perPage) * 1000 + Int32(i % perPage % 1000)
        }
    }

    /// Which of `pages` pages still hold `fill(tag:)`'s pattern: "F" filled, "0" all zero, "?" other.
    func pattern(_ base: UInt64, pages: Int, tag: Int32, firstPage: Int = 0) -> String {
        let perPage = page / 4
        let values = machine.loadInt32s(base, count: pages * perPage)
        return String((0..<pages).map { p -> Character in
            let slice = values[(p * perPage)..<((p + 1) * perPage)]
            if slice.allSatisfy({ $0 == 0 }) { return "0" }
            var ok = true
            for (j, v) in slice.enumerated() where v != tag * 1_000_000 + Int32(firstPage + p) * 1000 + Int32(j % 1000) {
                ok = false
                break
            }
            return ok ? "F" : "?"
        })
    }

    /// A PROT_NONE reservation to place fixed mappings in.
    func reserve(_ pages: Int) throws -> UInt64 {
        try anon(pages, .none)
    }
}
