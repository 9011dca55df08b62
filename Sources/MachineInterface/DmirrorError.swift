import ABI

/// A dmirror command that did not succeed.
public enum DmirrorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The driver returned an error; the command struct was not copied back.
    case failed(DmirrorCommand, Errno)
    /// The running kernel's ABI generation has no such command (a SKIP, not a failure).
    case unsupported(DmirrorCommand, ABIGeneration)

    public var errno: Errno? {
        if case .failed(_, let e) = self { return e }
        return nil
    }

    public var description: String {
        switch self {
        case .failed(let command, let errno):
            "\(command.kernelName) failed: \(errno.named)"
        case .unsupported(let command, let abi):
            "\(command.kernelName) does not exist in the \(abi); use a newer kernel or force another generation with --abi"
        }
    }
}

/// What a successful command reports back in `struct hmm_dmirror_cmd`.
public struct CommandResult: Hashable, Sendable {
    /// Pages copied, migrated or snapshotted.
    public var cpages: UInt64
    /// Device fault rounds (not pages): 1 for a fresh range, 0 when already mirrored.
    public var faults: UInt64
    public init(cpages: UInt64, faults: UInt64) {
        self.cpages = cpages
        self.faults = faults
    }
}
