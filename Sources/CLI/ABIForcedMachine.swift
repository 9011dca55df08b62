import DmirrorDevice
import DmirrorMachine

/// `--backend sim --abi X`: the simulator's driver speaks the newest ABI; this
/// puts an older generation's numbering in front of it, so the suite sees what
/// a kernel of that generation offers (a missing command is a SKIP; an unknown
/// request number is ENOTTY, as in dmirror_fops_unlocked_ioctl()).
final class ABIForcedMachine: Machine {
    let base: any Machine
    let abi: ABIGeneration
    /// The generation the wrapped driver decodes.
    let native: ABIGeneration

    init(_ base: any Machine, abi: ABIGeneration, native: ABIGeneration = .newest) {
        self.base = base
        self.abi = abi
        self.native = native
    }

    /// A device file that renumbers each request from `abi` to `native`.
    final class File: DmirrorFile {
        let base: any DmirrorFile
        let abi: ABIGeneration
        let native: ABIGeneration
        init(_ base: any DmirrorFile, abi: ABIGeneration, native: ABIGeneration) {
            self.base = base
            self.abi = abi
            self.native = native
        }
        var unit: Int { base.unit }
        func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno> {
            guard let command = abi.command(forRequest: request), let translated = native.request(for: command) else {
                return .failure(.ENOTTY)
            }
            return base.ioctl(request: translated, &cmd)
        }
        func close() throws(Errno) { try base.close() }
    }

    var backend: Backend { base.backend }
    var pageSize: Int { base.pageSize }
    var pmdPageSize: Int { base.pmdPageSize }
    var defaultHugePageSize: Int { base.defaultHugePageSize }
    func freeHugePages() -> Int { base.freeHugePages() }
    func reserveHugePages(_ count: Int) -> Bool { base.reserveHugePages(count) }

    func mmap(address: UInt64?, length: Int, protection: Protection, flags: MapFlags, source: MappingSource,
              offset: Int) throws(Errno) -> UInt64 {
        var source = source
        // The driver's mmap wants its own file back.
        if case .device(let device) = source, let file = device.file as? File {
            source = .device(MirrorDevice(file: file.base, abi: native))
        }
        return try base.mmap(address: address, length: length, protection: protection, flags: flags,
                             source: source, offset: offset)
    }
    func munmap(_ address: UInt64, length: Int) throws(Errno) { try base.munmap(address, length: length) }
    func mprotect(_ address: UInt64, length: Int, protection: Protection) throws(Errno) {
        try base.mprotect(address, length: length, protection: protection)
    }
    func madvise(_ address: UInt64, length: Int, advice: Advice) throws(Errno) {
        try base.madvise(address, length: length, advice: advice)
    }
    func mremap(_ address: UInt64, oldSize: Int, newSize: Int, flags: RemapFlags,
                newAddress: UInt64?) throws(Errno) -> UInt64 {
        try base.mremap(address, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: newAddress)
    }
    func load(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) { base.load(address, into: buffer) }
    func store(_ address: UInt64, from buffer: UnsafeRawBufferPointer) { base.store(address, from: buffer) }
    func createTemporaryFile(size: Int) throws(Errno) -> any MachineFile { try base.createTemporaryFile(size: size) }
    func openMirror(unit: Int) throws(Errno) -> MirrorDevice {
        let device = try base.openMirror(unit: unit)
        return MirrorDevice(file: File(device.file, abi: abi, native: native), abi: abi)
    }
    func pagemapEntry(_ address: UInt64) throws(Errno) -> UInt64 { try base.pagemapEntry(address) }
    func openGupTest() throws(Errno) -> any GupTestFile { try base.openGupTest() }
    func userfaultfd() throws(Errno) -> any UserfaultFile { try base.userfaultfd() }
    func eventfd() throws(Errno) -> any EventFile { try base.eventfd() }
    func fork(_ child: @escaping (any Machine) throws -> Int32) throws(Errno) -> any ChildProcess {
        let abi = self.abi
        let native = self.native
        return try base.fork { machine in try child(ABIForcedMachine(machine, abi: abi, native: native)) }
    }
}
