import Testing
import ABI
import MachineInterface
import Linux
import Simulator
#if canImport(Glibc)
import Glibc
#endif

/// The simulator's plain mm answers, checked against this host's kernel.
/// Each test runs one scenario on `LinuxMachine` and on a fresh simulated
/// process and expects equal observation logs (see MachineConformanceSupport.swift).
@Suite("Machine conformance")
struct MachineConformanceTests {
    @Test("anonymous memory: mmap fixed/noreplace/hints, munmap, mprotect, madvise")
    func anonymous() throws { try expectConformance(ConformanceScenarios.anonymousBasics) }

    @Test("mremap: grow in place, MAYMOVE, FIXED, DONTUNMAP, shrink, errors")
    func remap() throws { try expectConformance(ConformanceScenarios.remap) }

    @Test("files: pread/pwrite, shared and private file mappings, short files")
    func files() throws { try expectConformance(ConformanceScenarios.files) }

    @Test("pagemap present/swap bits")
    func pagemap() throws { try expectConformance(ConformanceScenarios.pagemap) }

    @Test("page, PMD and hugetlb sizes",
          .enabled(if: LinuxMachine(abi: .newest).pmdPageSize > 0, "the host reports no THP (hpage_pmd_size 0)"))
    func sizes() throws { try expectConformance(ConformanceScenarios.sizes) }

    @Test("userfaultfd MISSING: a handler thread resolves CPU loads in order")
    func userfault() throws { try expectConformance(ConformanceScenarios.userfault) }

    @Test("hugetlb MAP_HUGETLB store/load",
          .enabled(if: LinuxMachine(abi: .newest).defaultHugePageSize > 0, "the host has no hugetlb"),
          .enabled(if: LinuxMachine(abi: .newest).freeHugePages() > 0,
                   "the host's default hugetlb pool has no free page (the suite never resizes it)"))
    func hugetlb() throws { try expectConformance(ConformanceScenarios.hugetlb) }
}

/// The fork scenarios fork the test process itself: one at a time.
@Suite("Machine conformance: fork", .serialized)
struct MachineConformanceForkTests {
    @Test("fork: private COW both ways, shared anonymous memory both ways")
    func memory() throws { try expectConformance(ConformanceScenarios.forkMemory) }

    @Test("fork: exit statuses, throwing child, SIGKILL before wait, SIGSEGV")
    func exitStatus() throws { try expectConformance(ConformanceScenarios.forkExitStatus) }

    @Test("fork: mprotect across a hole changes the part before the hole")
    func mprotectAcrossHole() throws { try expectConformance(ConformanceScenarios.mprotectAcrossHole) }
}
