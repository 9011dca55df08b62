import ABI
import MachineInterface

/// One run of a scenario on one machine: the setup, the tasks at once, the last
/// look, and the outcome they recorded.
///
/// `@unchecked Sendable`: the shared parts are written by the main thread before
/// the tasks start and after they end; the jitter state only on the kernel run,
/// where it is a harmless race.
public final class ScenarioRun: @unchecked Sendable {
    public let scenario: ConcurrentScenario
    let machine: any Machine
    let pageSize: Int
    var pages: Int { scenario.pages }
    private(set) var base: UInt64 = 0
    /// The kernel run's jitter state (nil: no jitter, as on the simulator).
    var jitter: UInt64?
    var sinkHole: UInt64 = 0
    private var children: [String: any ChildProcess] = [:]
    private var logs: [(name: String, log: TaskLog, shared: (UInt64, Int)?)] = []
    private var setupLog = TaskLog()
    private var finalLog = TaskLog()
    /// A line for how the run ended early (a setup that failed).
    private var aborted: String?

    /// `jitterSeed`: spin a seeded while before each operation (kernel runs).
    public init(_ scenario: ConcurrentScenario, on machine: any Machine, jitterSeed: UInt64? = nil) {
        self.scenario = scenario
        self.machine = machine
        pageSize = machine.pageSize
        jitter = jitterSeed.map { $0 | 1 }
    }

    func child(_ name: String) -> (any ChildProcess)? { children[name] }

    /// Runs the scenario to its end.
    public func execute() {
        var devices: [Int: MirrorDevice] = [:]
        for unit in scenario.devices {
            switch Result(catching: { () throws(Errno) in try machine.openMirror(unit: unit) }) {
            case .success(let device): devices[unit] = device
            case .failure(let errno):
                aborted = "open hmm_dmirror\(unit) -> \(errno.name)"
                return
            }
        }
        let processTasks = scenario.tasks.filter { $0.kind == .process }.count
        do throws(Errno) {
            base = try machine.mmap(address: nil, length: pages * pageSize, protection: [.read, .write],
                                    flags: [.private, .anonymous], source: .anonymous, offset: 0)
            var sharedBase: UInt64 = 0
            if processTasks > 0 {
                sharedBase = try machine.mmap(address: nil, length: processTasks * pageSize, protection: [.read, .write],
                                              flags: [.shared, .anonymous], source: .anonymous, offset: 0)
            }
            var slot = 0
            for task in scenario.tasks {
                if task.kind == .process {
                    let address = sharedBase + UInt64(slot * pageSize)
                    slot += 1
                    logs.append((task.name, TaskLog(shared: (machine, address, pageSize)), (address, pageSize)))
                } else {
                    logs.append((task.name, TaskLog(), nil))
                }
            }
        } catch {
            aborted = "mmap -> \(error.name)"
            return
        }
        let main = TaskContext(name: "setup", machine: machine, run: self, devices: devices, log: setupLog)
        scenario.setup(main)
        // Children first: fork() while this process has one thread.
        for (index, task) in scenario.tasks.enumerated() where task.kind == .process {
            let log = logs[index].log
            let run = self
            let inherited = devices
            do {
                children[task.name] = try machine.fork { childMachine in
                    let context = TaskContext(name: task.name, machine: childMachine, run: run, devices: inherited,
                                              log: log.mirrored(by: childMachine))
                    task.body(context)
                    return 0
                }
            } catch {
                logs[index].log.append("fork -> \(error.name)")
            }
        }
        var threads: [any MachineThread] = []
        for (index, task) in scenario.tasks.enumerated() where task.kind == .thread {
            let context = TaskContext(name: task.name, machine: machine, run: self, devices: devices, log: logs[index].log)
            do {
                threads.append(try machine.startThread { task.body(context) })
            } catch {
                logs[index].log.append("pthread_create -> \(error.name)")
            }
        }
        for thread in threads { thread.join() }
        for (index, task) in scenario.tasks.enumerated() where task.kind == .process {
            guard let child = children[task.name], let (address, size) = logs[index].shared else { continue }
            let status: String
            switch Result(catching: { () throws(Errno) in try child.wait() }) {
            case .success(let ended): status = "\(ended)"
            case .failure(let errno): status = "waitpid \(errno.name)"
            }
            let lines = TaskLog.read(machine, address, size: size)
            let log = TaskLog()
            for line in lines { log.append(line) }
            log.append("exit: \(status)")
            logs[index].log = log
        }
        scenario.final(TaskContext(name: "final", machine: machine, run: self, devices: devices, log: finalLog))
    }

    /// The outcome so far: every task's lines in task order, then the last look's.
    public var outcome: [String] {
        var lines = setupLog.lines.map { "setup: " + $0 }
        if let aborted { return lines + ["setup: " + aborted] }
        for (name, log, _) in logs { lines += log.lines.map { "\(name): " + $0 } }
        lines += finalLog.lines.map { "final: " + $0 }
        return lines
    }
}
