import ABI
import ArgumentParser
import Bench
import Harness
import Linux
import MachineInterface
import Simulator
import Syscalls

/// `dmirror bench`: per-ioctl latency, and the page-table walks of the migrate-on-fault sequences.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure per-ioctl latency of READ, WRITE, SNAPSHOT and migration round trips, and count page-table walks.",
        discussion: """
            Each operation runs --iterations times per repeat on a 2 MiB buffer aligned to 2 MiB (MADV_HUGEPAGE \
            or MADV_NOHUGEPAGE), after a warm-up; the median of --repeats repeats is reported in ns per call. \
            --compare FILE sets the lab's C loop beside it (lines: OPERATION on|off NS) and prints each ratio. \
            --walks counts the walk_page_range()/walk_page_range_vma() calls of the three sequences the \
            migrate-on-fault series compares (on the kernel through kprobes: root and CONFIG_KPROBE_EVENTS). \
            Exit status: 0, 1 if an operation failed or the arguments were bad, 4 if the backend cannot run.
            """
    )

    @Option(help: "auto: the real test_hmm driver if /dev/hmm_dmirror0 is test_hmm's and opens, else the simulator.")
    var backend: BackendChoice = .auto

    @Option(help: ArgumentHelp("Calls per repeat.", valueName: "N"))
    var iterations = 2000

    @Option(help: ArgumentHelp("Repeats (the median is reported).", valueName: "R"))
    var repeats = 7

    @Option(help: "THP for the buffer: on (MADV_HUGEPAGE), off (MADV_NOHUGEPAGE) or both.")
    var thp: THPChoice = .both

    @Option(help: ArgumentHelp("Only this operation (repeatable): "
                               + Benchmarks.operations.map(\.name).joined(separator: ", ") + "; with --migration, a variant: "
                               + MigrationBench.Variant.all.map(\.name).joined(separator: ", ") + ".", valueName: "NAME"))
    var only: [String] = []

    @Flag(help: "Also count the page-table walks of the migrate-on-fault series' three sequences.")
    var walks = false

    @Option(name: .customLong("walk-pages"), help: ArgumentHelp("The range the walk sequences run on, in pages (1 to 512).",
                                                                 valueName: "N"))
    var walkPages = 32

    @Option(help: ArgumentHelp("The C loop's results to set beside (lines: OPERATION on|off NS).", valueName: "FILE"))
    var compare: String?

    @Option(help: ArgumentHelp("Instead of the latencies: migration bandwidth by size (MiB, comma-separated, e.g. "
                               + "1,16,256) against a warm memcpy, with the peak resident set and host faults per page.",
                               valueName: "LIST"))
    var migration: String?

    @Option(help: "text, or json (one document, for the lab).")
    var format: ReportFormat = .text

    @OptionGroup(title: "Simulator") var simulator: SimulatorOptions

    enum THPChoice: String, CaseIterable, ExpressibleByArgument {
        case on, off, both
        var modes: [Bool] { self == .both ? [false, true] : [self == .on] }
    }

    /// --migration's sizes in bytes.
    var migrationSizes: [Int]? {
        migration.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { (Int($0) ?? -1) << 20 } }
    }

    func validate() throws {
        guard iterations >= 1, repeats >= 1 else { throw ValidationError("--iterations and --repeats must be at least 1") }
        if let sizes = migrationSizes, sizes.isEmpty || sizes.contains(where: { $0 <= 0 || $0 > 16 << 30 }) {
            throw ValidationError("--migration \(migration ?? ""): expected sizes in MiB, 1 to 16384, comma-separated")
        }
        guard (1...512).contains(walkPages) else { throw ValidationError("--walk-pages is 1 to 512 (got \(walkPages))") }
        let known = Set(migration == nil ? Benchmarks.operations.map(\.name) : MigrationBench.Variant.all.map(\.name))
        if let unknown = only.first(where: { !known.contains($0) }) {
            throw ValidationError("--only \(unknown): no such operation (operations: \(known.sorted().joined(separator: ", ")))")
        }
        if backend == .kernel && simulator.given {
            throw ValidationError("--sim-* options configure the simulator; the kernel backend is what it is")
        }
    }

    func run() throws {
        // The C results are read first: a bad file is refused before anything is measured.
        let baseline = try compare.map { try Self.readBaseline($0) }
        var resolved = try BackendResolver.resolve(backend, abi: nil, simulated: simulator.simulated)
        var walkProblem: String?
        if walks && resolved.backend == .kernel {
            do {
                try WalkProbes.install()
                resolved.countsWalks = true
            } catch {
                walkProblem = error.description
            }
        }
        let machine = resolved.makeMachine()
        if let sizes = migrationSizes {
            let variants = MigrationBench.Variant.all.filter { only.isEmpty || only.contains($0.name) }
            let rows = MigrationBench.run(on: machine, sizes: sizes, variants: variants, repeats: repeats)
            let report = MigrationReport(backend: resolved.info.detail, repeats: repeats, rows: rows)
            try Output.write(format == .json ? report.json : report.text, for: "bench")
            if rows.contains(where: { $0.error != nil }) { throw ExitCode(KSFTExit.fail) }
            return
        }
        let results: [Benchmarks.Result]
        do {
            results = try Benchmarks.run(on: machine, thpModes: thp.modes, iterations: iterations, repeats: repeats,
                                         only: Set(only))
        } catch {
            throw refuse(error.description, exit: KSFTExit.fail)
        }
        var walkCounts: [WalkSequences.Count]?
        if walks {
            walkCounts = WalkSequences.count(on: machine, pages: walkPages)
            if resolved.backend == .simulator, var counts = walkCounts {
                // The third sequence needs the proposed command: the migrate-on-fault variant has it.
                var configuration = resolved.simulated
                configuration.variants.insert(.migrateOnFault)
                let proposed = SimKernel(configuration: configuration).spawnProcess()
                let third = WalkSequences.count(on: proposed, pages: walkPages) ?? []
                counts = counts.filter { $0.sequence.commands != [.migrateOnFaultToDevice] }
                    + third.filter { $0.sequence.commands == [.migrateOnFaultToDevice] }
                walkCounts = counts
            }
            if walkCounts == nil && walkProblem == nil { walkProblem = "this machine does not count page-table walks" }
        }
        let ownPath = Benchmarks.userspacePath(abi: resolved.abi, repeats: repeats)
        let report = BenchReport(backend: resolved.info.detail, iterations: iterations, repeats: repeats, results: results,
                                 baseline: baseline, walks: walkCounts, walkPages: walkPages, walkProblem: walkProblem,
                                 userspaceNanoseconds: ownPath)
        try Output.write(format == .json ? report.json : report.text, for: "bench")
        if results.contains(where: { $0.error != nil }) { throw ExitCode(KSFTExit.fail) }
    }

    /// The C loop's lines, OPERATION on|off NS, into (operation, thp) → ns. Bounded: 1 MiB, regular files.
    static func readBaseline(_ path: String) throws -> [String: Double] {
        let text: String
        do {
            text = try BoundedText.read(path, limit: 1 << 20)
        } catch {
            throw refuse("bench: --compare \(path): \(error)", exit: KSFTExit.fail)
        }
        var baseline: [String: Double] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 3, fields[1] == "on" || fields[1] == "off", let ns = Double(fields[2]), ns > 0 else {
                throw refuse("bench: --compare \(path):\(index + 1): expected \"OPERATION on|off NS\"", exit: KSFTExit.fail)
            }
            baseline["\(fields[0]) \(fields[1])"] = ns
        }
        return baseline
    }
}

/// What `dmirror bench` prints.
struct BenchReport {
    let backend: String
    let iterations: Int
    let repeats: Int
    let results: [Benchmarks.Result]
    let baseline: [String: Double]?
    let walks: [WalkSequences.Count]?
    let walkPages: Int
    let walkProblem: String?
    /// dmirror's own path per command, the ioctl left out (`Benchmarks.userspacePath`).
    let userspaceNanoseconds: Double

    private func key(_ result: Benchmarks.Result) -> String { "\(result.operation) \(result.thp ? "on" : "off")" }

    private func ratio(_ result: Benchmarks.Result) -> Double? {
        guard let c = baseline?[key(result)], result.error == nil else { return nil }
        return result.median / c
    }

    var text: String {
        var lines = ["dmirror bench: \(backend), \(iterations) calls x \(repeats) repeats (median ns per call)"]
        var header = TextFormat.padded("operation", 24) + TextFormat.padded("THP", 5) + TextFormat.padded("median", 10)
            + TextFormat.padded("min", 10) + TextFormat.padded("max", 10)
        if baseline != nil { header += TextFormat.padded("C", 10) + "ratio" }
        lines.append(header)
        for result in results {
            var row = TextFormat.padded(result.operation, 24) + TextFormat.padded(result.thp ? "on" : "off", 5)
            if let error = result.error {
                lines.append(row + "failed: " + error)
                continue
            }
            row += TextFormat.padded(TextFormat.fixed(result.median), 10) + TextFormat.padded(TextFormat.fixed(result.perRepeat.first!), 10)
                + TextFormat.padded(TextFormat.fixed(result.perRepeat.last!), 10)
            if let baseline {
                if let c = baseline[key(result)], let ratio = ratio(result) {
                    row += TextFormat.padded(TextFormat.fixed(c), 10) + TextFormat.fixed(ratio, 3)
                } else {
                    row += TextFormat.padded("-", 10) + "-"
                }
            }
            lines.append(row)
        }
        lines.append("dmirror's own path per command (MirrorDevice.perform down to an ioctl that returns at once): "
                     + "\(TextFormat.fixed(userspaceNanoseconds, 1)) ns")
        if let walkProblem { lines.append("page-table walks: not counted: \(walkProblem)") }
        if let walks {
            lines.append("page-table walks over \(walkPages) pages (walk_page_range + walk_page_range_vma calls, per command):")
            lines.append(TextFormat.padded("sequence", 36) + TextFormat.padded("claimed", 9)
                         + WalkSequences.PageState.allCases.map { TextFormat.padded($0.rawValue, 16) }.joined())
            for sequence in WalkSequences.sequences {
                var row = TextFormat.padded(sequence.name, 36) + TextFormat.padded(String(sequence.claimed), 9)
                for state in WalkSequences.PageState.allCases {
                    guard let count = walks.first(where: { $0.sequence.name == sequence.name && $0.state == state }) else {
                        row += TextFormat.padded("-", 16)
                        continue
                    }
                    if let error = count.error {
                        row += TextFormat.padded("(\(error))", 16)
                    } else {
                        row += TextFormat.padded("\(count.total) (" + count.perCommand.map(String.init).joined(separator: "+") + ")", 16)
                    }
                }
                lines.append(row)
            }
        }
        return lines.joined(separator: "\n")
    }

    var json: String {
        let rows = results.map { result -> String in
            var fields = ["\"operation\": \(JSON.quote(result.operation))", "\"thp\": \(result.thp)"]
            if let error = result.error {
                fields.append("\"error\": \(JSON.quote(error))")
            } else {
                fields += ["\"median_ns\": \(TextFormat.fixed(result.median, 1))", "\"min_ns\": \(TextFormat.fixed(result.perRepeat.first!, 1))",
                           "\"max_ns\": \(TextFormat.fixed(result.perRepeat.last!, 1))"]
                if let c = baseline?[key(result)], let ratio = ratio(result) {
                    fields += ["\"c_ns\": \(TextFormat.fixed(c, 1))", "\"ratio\": \(TextFormat.fixed(ratio, 4))"]
                }
            }
            return "{" + fields.joined(separator: ", ") + "}"
        }
        let walkRows = (walks ?? []).map { count -> String in
            "{\"sequence\": \(JSON.quote(count.sequence.name)), \"state\": \(JSON.quote(count.state.rawValue)), "
                + "\"claimed\": \(count.sequence.claimed), \"per_command\": [" + count.perCommand.map(String.init).joined(separator: ", ")
                + "], \"error\": " + (count.error.map(JSON.quote) ?? "null") + "}"
        }
        return "{\"backend\": \(JSON.quote(backend)), \"iterations\": \(iterations), \"repeats\": \(repeats), "
            + "\"results\": [" + rows.joined(separator: ", ") + "], "
            + "\"userspace_ns\": \(TextFormat.fixed(userspaceNanoseconds, 1)), \"walk_pages\": \(walkPages), "
            + "\"walks\": " + (walks == nil ? "null" : "[" + walkRows.joined(separator: ", ") + "]")
            + ", \"walks_problem\": " + (walkProblem.map(JSON.quote) ?? "null") + "}"
    }
}

/// What `dmirror bench --migration` prints.
struct MigrationReport {
    let backend: String
    let repeats: Int
    let rows: [MigrationBench.Row]

    var text: String {
        var lines = ["dmirror bench --migration: \(backend), median of \(repeats)",
                     TextFormat.padded("variant", 15) + TextFormat.padded("MiB", 7) + TextFormat.padded("to-dev GB/s", 13) + TextFormat.padded("to-sys GB/s", 13)
                        + TextFormat.padded("memcpy GB/s", 13) + TextFormat.padded("ratio dev/sys", 15) + TextFormat.padded("ns/page dev/sys", 17)
                        + TextFormat.padded("peak/real MiB", 15) + "faults/page"]
        for row in rows {
            var line = TextFormat.padded(row.variant.name, 15) + TextFormat.padded(String(row.bytes >> 20), 7)
            if let error = row.error {
                lines.append(line + "failed: " + error)
                continue
            }
            let gb = Double(row.bytes) / 1e9
            line += TextFormat.padded(TextFormat.fixed(gb / row.toDevice, 2), 13) + TextFormat.padded(TextFormat.fixed(gb / row.toSystem, 2), 13)
                + TextFormat.padded(TextFormat.fixed(gb / row.memcpy, 2), 13)
                + TextFormat.padded(TextFormat.fixed(row.toDeviceRatio, 2) + "/" + TextFormat.fixed(row.toSystemRatio, 2), 15)
                + TextFormat.padded(TextFormat.fixed(row.toDevice * 1e9 / Double(row.pages), 0) + "/" + TextFormat.fixed(row.toSystem * 1e9 / Double(row.pages), 0), 17)
                + TextFormat.padded((row.peakResident.map { String($0 >> 20) } ?? "?") + "/" + String(row.realFootprint >> 20), 15)
                + TextFormat.fixed(row.faultsPerPage, 2)
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    var json: String {
        let items = rows.map { row -> String in
            var fields = ["\"variant\": \(JSON.quote(row.variant.name))", "\"bytes\": \(row.bytes)"]
            if let error = row.error {
                fields.append("\"error\": \(JSON.quote(error))")
            } else {
                fields += ["\"to_device_s\": \(TextFormat.fixed(row.toDevice, 6))", "\"to_system_s\": \(TextFormat.fixed(row.toSystem, 6))",
                           "\"memcpy_s\": \(TextFormat.fixed(row.memcpy, 6))", "\"to_device_ratio\": \(TextFormat.fixed(row.toDeviceRatio, 4))",
                           "\"to_system_ratio\": \(TextFormat.fixed(row.toSystemRatio, 4))",
                           "\"peak_resident\": \(row.peakResident.map(String.init) ?? "null")",
                           "\"real_footprint\": \(row.realFootprint)", "\"faults_per_page\": \(TextFormat.fixed(row.faultsPerPage, 3))"]
            }
            return "{" + fields.joined(separator: ", ") + "}"
        }
        return "{\"backend\": \(JSON.quote(backend)), \"repeats\": \(repeats), \"rows\": [" + items.joined(separator: ", ") + "]}"
    }
}
