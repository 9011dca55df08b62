import ABI
import Harness
import MachineInterface

// THP migration timing (hmm-tests.c: benchmark_thp_migration and its helpers
// run_migration_benchmark, print_benchmark_results).

/// Averages of one run_migration_benchmark() (struct benchmark_results).
struct MigrationBenchmarkResults {
    var sysToDevTime = 0.0
    var devToSysTime = 0.0
    var throughputS2D = 0.0
    var throughputD2S = 0.0
}

enum MigrationBenchmark {
    /// Milliseconds on a monotonic clock.
    static func nowMilliseconds() -> Double {
        let elapsed = ContinuousClock.now - origin
        let parts = elapsed.components
        return Double(parts.seconds) * 1000.0 + Double(parts.attoseconds) / 1e15
    }

    private static let origin = ContinuousClock.now

    /// One size, THP hinted on or off: populate, one warm-up round trip, then
    /// `iterations` timed MIGRATE_TO_DEV / MIGRATE_TO_SYS pairs. Returns 0,
    /// -1 (allocation or madvise failed) or the failing command's -errno.
    static func run(_ t: TestContext, fd: MirrorDevice, useTHP: Bool, bufferSize: Int, iterations: Int,
                    results: inout MigrationBenchmarkResults) throws -> Int32 {
        let npages = bufferSize / t.machine.pageSize
        var s2dTotal = 0.0
        var d2sTotal = 0.0

        guard let buffer = hmmBufferAlloc(t.machine, bufferSize, bufferSize, [.read, .write], [.private, .anonymous]) else {
            return -1
        }
        defer { buffer.free() }
        buffer.setMirrorBytes(0xFF, count: bufferSize)

        var ret = cCall { try t.machine.madvise(buffer.ptr, length: bufferSize, advice: useTHP ? .hugePage : .noHugePage) }
        if ret != 0 { return ret }

        // Touch every page so there is something to migrate.
        t.machine.storeInt32s(buffer.ptr, count: bufferSize / 4) { Int32($0 & 0xFF) }

        ret = try hmmMigrateSysToDev(fd, buffer, npages)
        if ret != 0 { return ret }
        ret = try hmmMigrateDevToSys(fd, buffer, npages)
        if ret != 0 { return ret }

        for _ in 0..<iterations {
            var start = nowMilliseconds()
            ret = try hmmMigrateSysToDev(fd, buffer, npages)
            if ret != 0 { return ret }
            var end = nowMilliseconds()
            s2dTotal += end - start

            start = nowMilliseconds()
            ret = try hmmMigrateDevToSys(fd, buffer, npages)
            if ret != 0 { return ret }
            end = nowMilliseconds()
            d2sTotal += end - start
        }

        let gib = Double(bufferSize) / (1024.0 * 1024.0 * 1024.0)
        results.sysToDevTime = s2dTotal / Double(iterations)
        results.devToSysTime = d2sTotal / Double(iterations)
        results.throughputS2D = gib / (results.sysToDevTime / 1000.0)
        results.throughputD2S = gib / (results.devToSysTime / 1000.0)
        return 0
    }

    /// The comparison table for one size, one "# "-prefixed stdout line each.
    static func printResults(_ t: TestContext, _ name: String, _ bufferSize: Int, thp: MigrationBenchmarkResults,
                             regular: MigrationBenchmarkResults) {
        let s2dGain = (regular.sysToDevTime - thp.sysToDevTime) / regular.sysToDevTime * 100.0
        let d2sGain = (regular.devToSysTime - thp.devToSysTime) / regular.devToSysTime * 100.0
        let s2dRateGain = (thp.throughputS2D - regular.throughputS2D) / regular.throughputS2D * 100.0
        let d2sRateGain = (thp.throughputD2S - regular.throughputD2S) / regular.throughputD2S * 100.0

        t.message("")
        t.message(format: "=== " + name + " (%.1f MB) ===", Double(bufferSize) / (1024.0 * 1024.0))
        t.message("                     | With THP        | Without THP     | Improvement")
        t.message("---------------------------------------------------------------------")
        t.message(format: "Sys->Dev Migration   | %.3f ms        | %.3f ms        | %.1f%%",
                  thp.sysToDevTime, regular.sysToDevTime, s2dGain)
        t.message(format: "Dev->Sys Migration   | %.3f ms        | %.3f ms        | %.1f%%",
                  thp.devToSysTime, regular.devToSysTime, d2sGain)
        t.message(format: "S->D Throughput      | %.2f GB/s      | %.2f GB/s      | %.1f%%",
                  thp.throughputS2D, regular.throughputS2D, s2dRateGain)
        t.message(format: "D->S Throughput      | %.2f GB/s      | %.2f GB/s      | %.1f%%",
                  thp.throughputD2S, regular.throughputD2S, d2sRateGain)
    }
}

extension HMMSuite {
    /// Times migration to and from the device for seven sizes (a quarter THP
    /// up to 128 THPs), with and without MADV_HUGEPAGE, and prints the
    /// comparison; only the commands' success is asserted.
    static let benchmarkThpMigration = TestDefinition(.hmm, "benchmark_thp_migration",
                                                      timeoutSeconds: 120, isBenchmark: true,
                                                      needs: [.transparentHugePages]) { t in
        var thpSize = t.machine.pmdPageSize
        let iterations = 5

        if thpSize == 0 { thpSize = HMMConstants.twoMeg }

        t.message("")
        t.message("HMM THP Migration Benchmark")
        t.message("---------------------------")
        t.message("System page size: \(t.machine.pageSize) bytes")

        let testSizes = [thpSize / 4, thpSize / 2, thpSize, thpSize * 2, thpSize * 4, thpSize * 8, thpSize * 128]
        let testNames = [
            "Small Buffer",
            "Half THP Size",
            "Single THP Size",
            "Two THP Size",
            "Four THP Size",
            "Eight THP Size",
            "One twenty eight THP Size",
        ]

        var thpResults = MigrationBenchmarkResults()
        var regularResults = MigrationBenchmarkResults()

        for i in testSizes.indices {
            if testSizes[i] > Int(Int32.max) { break }

            try t.assertEqual(MigrationBenchmark.run(t, fd: t.fd, useTHP: true, bufferSize: testSizes[i],
                                                     iterations: iterations, results: &thpResults), 0,
                              "run_migration_benchmark(THP)")

            try t.assertEqual(MigrationBenchmark.run(t, fd: t.fd, useTHP: false, bufferSize: testSizes[i],
                                                     iterations: iterations, results: &regularResults), 0,
                              "run_migration_benchmark(no THP)")

            MigrationBenchmark.printResults(t, testNames[i], testSizes[i], thp: thpResults, regular: regularResults)
        }
    }
}
