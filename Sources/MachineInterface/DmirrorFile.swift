import ABI

/// An open /dev/hmm_dmirrorN: the one operation the ABI has, ioctl(2).
///
/// Two implementations: `KernelDmirrorFile` (a real file descriptor) and
/// the simulator's driver file. `MirrorDevice` puts typed commands on top.
public protocol DmirrorFile: AnyObject, Sendable {
    /// The minor number N of /dev/hmm_dmirrorN.
    var unit: Int { get }
    /// ioctl(fd, request, &cmd). On success the kernel copied `cmd` back
    /// (cpages, faults); on failure `cmd` is left as the caller passed it.
    func ioctl(request: UInt, _ cmd: inout DmirrorCmd) -> Result<Void, Errno>
    /// close(2). Closing any file of a device evicts all of that device's pages to RAM.
    func close() throws(Errno)
}
