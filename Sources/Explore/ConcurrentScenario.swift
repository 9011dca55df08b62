import ABI
import MachineInterface

/// A small concurrent scenario: a setup on the main thread, then two or three
/// tasks at once (threads of the process, or a forked child), then a last look
/// from the main thread. Every operation's answer is recorded: errno, cpages,
/// faults, snapshot bytes, the data a read or a CPU load returned. The same
/// scenario runs on the simulator under chosen schedules and on the real
/// kernel under whatever schedule it gives.
public struct ConcurrentScenario: Sendable {
    /// A task of the scenario.
    public struct Task: Sendable {
        public enum Kind: Sendable {
            /// A thread sharing the scenario's address space.
            case thread
            /// A forked child with a copy-on-write copy of it; the parent's threads
            /// can signal and reap it through `TaskContext.child`.
            case process
        }
        public let name: String
        public let kind: Kind
        public let body: @Sendable (TaskContext) -> Void

        public init(_ name: String, _ kind: Kind = .thread, _ body: @escaping @Sendable (TaskContext) -> Void) {
            self.name = name
            self.kind = kind
            self.body = body
        }
    }

    /// What exploring the scenario must find under a set of simulator variants.
    public struct Expectation: Sendable, Hashable {
        /// The simulator variants (by name) the expectation is for; empty: the stock model.
        public let variants: [String]
        /// Text some checker report must contain in some explored schedule; nil: no
        /// report in any schedule.
        public let finding: String?
        /// Reports some schedules may give besides the finding (text or kind): a stock
        /// finding that a variant's scenario meets too. Any other report fails the expectation.
        public let tolerating: [String]
        /// Why: the bug pattern or the fix.
        public let because: String

        public init(variants: [String] = [], finding: String? = nil, tolerating: [String] = [], because: String) {
            self.variants = variants
            self.finding = finding
            self.tolerating = tolerating
            self.because = because
        }
    }

    public let name: String
    public let summary: String
    /// The scenario's buffer, in pages (mapped anonymous and private, read-write, and
    /// filled by `setup` unless it says otherwise).
    public let pages: Int
    /// The dmirror units the main thread opens before the setup (in this order).
    public let devices: [Int]
    /// Whether the scenario can run on the real kernel (a scenario for a proposed
    /// command, or one whose races would kill the process, cannot).
    public let runsOnKernel: Bool
    public let setup: @Sendable (TaskContext) -> Void
    public let tasks: [Task]
    /// After every task ended: the last look (CPU loads, a snapshot).
    public let final: @Sendable (TaskContext) -> Void
    public let expectations: [Expectation]

    public init(name: String, summary: String, pages: Int, devices: [Int] = [0], runsOnKernel: Bool = true,
                setup: @escaping @Sendable (TaskContext) -> Void = { $0.fill() },
                tasks: [Task], final: @escaping @Sendable (TaskContext) -> Void,
                expectations: [Expectation]) {
        self.name = name
        self.summary = summary
        self.pages = pages
        self.devices = devices
        self.runsOnKernel = runsOnKernel
        self.setup = setup
        self.tasks = tasks
        self.final = final
        self.expectations = expectations
    }
}
