import ABI
import Harness
import MachineInterface
import Synchronization

/// Where the runner gets the host buffers the driver's `ptr` points at (data
/// read or written, snapshot bytes). On the real kernel they live in the same
/// address space as the scenario's mappings, so the CLI gives buffers that
/// cannot merge with them (MAP_SHARED); tests use the heap.
public protocol ScenarioBuffers: Sendable {
    /// A zero-filled buffer of `bytes` bytes, or nil when there is no memory for it.
    func allocate(_ bytes: Int) -> UnsafeMutableRawBufferPointer?
    /// Gives back a buffer `allocate` returned.
    func release(_ buffer: UnsafeMutableRawBufferPointer)
}

/// Page-aligned heap buffers, the last one kept for the next request: a scenario asks for
/// one per data command, and a fresh multi-megabyte allocation would be fresh pages the host
/// must fault in and zero every time.
public final class HeapBuffers: ScenarioBuffers, @unchecked Sendable {
    /// Guards `cached` and `wholes` (a forked child on the simulator runs on another thread).
    private let lock = Mutex<Void>(())
    private var cached: UnsafeMutableRawBufferPointer?
    /// The whole allocation behind each buffer handed out, by its address.
    private var wholes: [UInt: UnsafeMutableRawBufferPointer] = [:]

    public init() {}

    deinit { cached?.baseAddress?.deallocate() }

    public func allocate(_ bytes: Int) -> UnsafeMutableRawBufferPointer? {
        lock.withLock { _ in
            var whole = cached
            cached = nil
            if let w = whole, w.count < bytes {
                w.baseAddress?.deallocate()
                whole = nil
            }
            let buffer = whole ?? UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 1), alignment: 4096)
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes])
            piece.initializeMemory(as: UInt8.self, repeating: 0)
            wholes[UInt(bitPattern: piece.baseAddress)] = buffer
            return piece
        }
    }

    public func release(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.withLock { _ in
            guard let whole = wholes.removeValue(forKey: UInt(bitPattern: buffer.baseAddress)) else { return }
            // Keep the larger of the two for the next request.
            if let old = cached, old.count >= whole.count {
                whole.baseAddress?.deallocate()
            } else {
                cached?.baseAddress?.deallocate()
                cached = whole
            }
        }
    }
}

/// How a scenario runs.
public struct ScenarioRunOptions: Sendable {
    /// The shadow model and the kernel's invariants are checked after every operation
    /// where the machine can be looked into (`MachineIntrospection`: the simulator).
    public var checks = true
    public var buffers: any ScenarioBuffers
    /// Runs first in the scenario's process. The CLI restores the default action of SIGSEGV and
    /// SIGBUS there: a CPU access that faults is an expected end, not a crash to print a backtrace for.
    public var prepareProcess: @Sendable () -> Void = {}

    public init(checks: Bool = true, buffers: any ScenarioBuffers = HeapBuffers(), prepareProcess: @escaping @Sendable () -> Void = {}) {
        self.checks = checks
        self.buffers = buffers
        self.prepareProcess = prepareProcess
    }
}

/// What the runner counted (the report recounts from the lines, which also
/// cover forked children on the real kernel).
public struct ScenarioSummary: Sendable, Hashable {
    public var mismatches = 0
    public var violations = 0
}

/// State every process of one scenario run shares. On the simulator a forked
/// child runs in this host process, so the child's counts and stop reach the
/// parent; on the kernel the child has its own copy (and no checks run).
final class RunState {
    var summary = ScenarioSummary()
    /// How many of the model's checker reports (lockdep, the notifier discipline) were shown already.
    var checkerReportsSeen = 0
    /// A violation was found: every process stops.
    var stopped = false
    /// Open dmirror files per unit, across processes (a device must be empty after its last close).
    var openFiles: [Int: Int] = [:]
    let pageSize: Int
    /// The bytes of rand() pattern pages the checks compared against.
    var randPages: [PageData: [UInt8]] = [:]

    init(pageSize: Int) { self.pageSize = pageSize }
}

/// A dmirror file the scenario opened, and the process whose mm it mirrors.
final class DeviceHandle {
    let device: MirrorDevice
    let unit: Int
    unowned let owner: ProcessState
    init(device: MirrorDevice, unit: Int, owner: ProcessState) {
        self.device = device
        self.unit = unit
        self.owner = owner
    }
}

/// What a name stands for while the scenario runs.
enum RuntimeValue {
    /// A mapping's first address (nil when the operation that made it failed: `why`).
    case mapping(base: UInt64?, pages: Int, why: String)
    case tempFile((any MachineFile)?, ShadowObject, why: String)
    /// An open file (nil: its open failed, or this process closed its inherited copy).
    case device(DeviceHandle?, why: String)
}

/// One process of the scenario: the top level, or a forked child.
final class ProcessState {
    let machine: any Machine
    let introspection: (any MachineIntrospection)?
    var values: [String: RuntimeValue]
    let shadow: ShadowSpace
    let depth: Int
    let parent: ProcessState?
    /// Files this process opened (closed when it ends, as exit(2) would).
    var ownDevices: [DeviceHandle] = []

    init(machine: any Machine, values: [String: RuntimeValue], shadow: ShadowSpace, depth: Int, parent: ProcessState?) {
        self.machine = machine
        self.introspection = machine as? any MachineIntrospection
        self.values = values
        self.shadow = shadow
        self.depth = depth
        self.parent = parent
    }

    var pageSize: Int { machine.pageSize }
}

/// Runs a scenario over any `Machine`, writing one canonical line per operation
/// through `emit`. Runs in the process the harness gave it: a CPU access the
/// kernel answers with SIGSEGV or SIGBUS ends that process, after a `?` line
/// announced the access (`ScenarioOutput` turns it into the result line).
public final class ScenarioRunner {
    public let scenario: Scenario
    let emit: (String) -> Void
    let options: ScenarioRunOptions
    var state: RunState!
    /// The CPU's side of a load (never the driver's, so always the heap).
    let loadBuffers = HeapBuffers()

    static let violationsShown = 8

    public init(_ scenario: Scenario, options: ScenarioRunOptions = .init(), emit: @escaping (String) -> Void) {
        self.scenario = scenario
        self.options = options
        self.emit = emit
    }

    /// Runs every statement on `machine`, then closes what is still open (as the
    /// process's exit would) and checks that every device page was freed.
    @discardableResult
    public func run(on machine: any Machine) -> ScenarioSummary {
        options.prepareProcess()
        state = RunState(pageSize: machine.pageSize)
        let top = ProcessState(machine: machine, values: [:], shadow: ShadowSpace(), depth: 0, parent: nil)
        runBlock(scenario.statements, in: top)
        finishProcess(top, line: lastLine(scenario.statements))
        return state.summary
    }

    func lastLine(_ statements: [Statement]) -> Int {
        guard let last = statements.last else { return 0 }
        return max(last.endLine, last.line, last.expectations.last?.line ?? 0)
    }

    func checking(_ process: ProcessState) -> Bool { options.checks && process.introspection != nil }

    func runBlock(_ statements: [Statement], in process: ProcessState) {
        for statement in statements {
            if state.stopped { return }
            if case .fork(let body) = statement.operation {
                runFork(statement, body, in: process)
                continue
            }
            var pending: [String] = []
            let outcome = execute(statement, in: process, violations: &pending)
            emit(ResultLine.operation(statement, outcome.result, depth: process.depth))
            expect(statement, outcome, depth: process.depth)
            if checking(process) { pending += checkAll(from: process) }
            report(pending, line: statement.line, depth: process.depth)
        }
    }

    /// The `expect` lines of `statement`, each with ok or what did not hold.
    func expect(_ statement: Statement, _ outcome: Outcome, depth: Int) {
        for expectation in statement.expectations {
            let mismatch = outcome.result.mismatch(expectation) { pattern in
                guard let (first, count) = outcome.dataPages else { return nil }
                return pattern.digest(pages: first, count: count, pageSize: state.pageSize)
            }
            if mismatch != nil { state.summary.mismatches += 1 }
            emit(ResultLine.expectation(expectation, mismatch: mismatch, depth: depth))
        }
    }

    /// Emits violation lines (the first few: one broken operation can break a thousand pages); any stops the run.
    func report(_ violations: [String], line: Int, depth: Int) {
        guard !violations.isEmpty else { return }
        for v in violations.prefix(Self.violationsShown) { emit(ResultLine.violation(line: line, v, depth: depth)) }
        if violations.count > Self.violationsShown {
            emit(ResultLine.violation(line: line, "... and \(violations.count - Self.violationsShown) more", depth: depth))
        }
        state.summary.violations += violations.count
        state.stopped = true
    }

    func runFork(_ statement: Statement, _ body: [Statement], in process: ProcessState) {
        emit(ResultLine.forkOpened(statement, depth: process.depth))
        let result: OperationResult
        do {
            let child = try process.machine.fork { [self] childMachine in
                let childState = ProcessState(machine: childMachine, values: process.values,
                                              shadow: process.shadow.copy(), depth: process.depth + 1, parent: process)
                runBlock(body, in: childState)
                finishProcess(childState, line: statement.endLine)
                return 0
            }
            switch try child.wait() {
            case .exited(let code): result = OperationResult(.exit(code))
            case .signaled(let signal): result = OperationResult(.signal(signal))
            }
        } catch {
            result = OperationResult(.errno(error))
        }
        emit(ResultLine.forkClosed(statement, result, depth: process.depth))
        expect(statement, Outcome(result), depth: process.depth)
        if !state.stopped && checking(process) { report(checkAll(from: process), line: statement.endLine, depth: process.depth) }
    }

    /// The end of a process: its files close (exit(2) releases them), and a device
    /// whose last file closed must have no page left.
    func finishProcess(_ process: ProcessState, line: Int) {
        var violations: [String] = []
        for handle in process.ownDevices.reversed() {
            violations += close(handle, in: process)
        }
        process.ownDevices.removeAll()
        if !state.stopped { report(violations, line: line, depth: process.depth) }
    }

    /// Every process this one can affect, and the kernel's invariants.
    func checkAll(from process: ProcessState) -> [String] {
        var problems: [String] = []
        var current: ProcessState? = process
        while let p = current {
            problems += ShadowChecker(state: state, process: p).check()
            current = p.parent
        }
        problems += process.introspection?.invariantViolations() ?? []
        // The protocol checkers' new reports count as violations too.
        if let reports = process.introspection?.checkerReports(), reports.count > state.checkerReportsSeen {
            problems += reports[state.checkerReportsSeen...].map { "checker: \($0)" }
            state.checkerReportsSeen = reports.count
        }
        return problems
    }
}

/// What executing a statement produced.
struct Outcome {
    var result: OperationResult
    /// The pages of the mapping the data read came from (for `expect data=PATTERN`).
    var dataPages: (first: Int, count: Int)?

    init(_ result: OperationResult, dataPages: (first: Int, count: Int)? = nil) {
        self.result = result
        self.dataPages = dataPages
    }
}
