/// What a case needs from a machine beyond the first test_hmm device: the
/// suite names them per case, and `dmirror doctor` says which ones a system
/// lacks and so which cases will skip (or cannot pass).
public enum MachineCapability: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// test_hmm loaded and /dev/hmm_dmirror0 usable: every case.
    case driver
    /// /dev/hmm_dmirror1 (and 3): the hmm2 fixture opens two devices.
    case secondDevice
    /// /dev/hmm_dmirror2 and 3: test_hmm loaded with spm_addr_dev0/1.
    case coherentDevices
    /// Transparent huge pages (enabled: always or madvise).
    case transparentHugePages
    /// Free hugetlb pages (or the right to raise nr_hugepages).
    case hugetlbPages
    /// /sys/kernel/debug/gup_test (CONFIG_GUP_TEST and debugfs).
    case gupTest
    /// The userfaultfd syscall, for this user.
    case userfaultfd

    public var description: String {
        switch self {
        case .driver: "the test_hmm driver"
        case .secondDevice: "a second device"
        case .coherentDevices: "device-coherent devices"
        case .transparentHugePages: "transparent huge pages"
        case .hugetlbPages: "hugetlb pages"
        case .gupTest: "gup_test"
        case .userfaultfd: "userfaultfd"
        }
    }
}
