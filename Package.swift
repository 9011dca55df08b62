// swift-tools-version: 6.2
// 6.2: typed throws, Synchronization's Mutex and Atomic, and InlineArray.
import PackageDescription

// dmirror drives a Linux driver and simulates Linux's mm: it builds on Linux only.
#if !os(Linux)
#error("dmirror builds and runs on Linux only")
#endif

let system = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

// The layers, bottom to top; each depends only on those below it.
let package = Package(
    name: "dmirror",
    products: [
        .executable(name: "dmirror", targets: ["dmirror"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // Tests only: property-based generation and shrinking inside swift-testing (it imports Testing,
        // and its shrinker runs only inside propertyCheck, so the dmirror executable does not use it).
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C: the ABI header (struct, request numbers, snapshot bytes, UAPI values) and the calls Swift cannot make.
        .target(name: "CDmirror", path: "Module"),
        // The ABI in Swift types: commands, request numbers per generation, snapshot entries, errno, UAPI values.
        .target(name: "ABI", dependencies: ["CDmirror", system]),
        // The machine protocol ("a process"), the device file protocol and typed dmirror commands. No Linux code.
        .target(name: "MachineInterface", dependencies: ["ABI"]),
        // The one thin syscall layer: a function per call, EINTR in one place, a recording/errno-forcing seam.
        .target(name: "Syscalls", dependencies: ["ABI", "CDmirror", system]),
        // The real backend: LinuxMachine, /dev/hmm_dmirrorN, the driver probe.
        .target(name: "Linux", dependencies: ["ABI", "MachineInterface", "Syscalls", system]),
        // The other backend: the kernel's mm and lib/test_hmm.c, laid out like the kernel tree.
        .target(
            name: "Simulator",
            dependencies: ["ABI", "MachineInterface"],
            // Debug builds (swift test) keep Swift's dynamic exclusivity checks; a release
            // build drops them in the simulator only, where they cost about a tenth of a
            // suite run (every page-table, lock and notifier access goes through a class).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // Runner, per-case isolation, filters, TAP/JSON/JUnit, command traces. Knows no case and no backend.
        .target(name: "Harness", dependencies: ["ABI", "MachineInterface", "Syscalls", system]),
        // The ported hmm-tests cases, their buffers, the kernel findings.
        .target(name: "Suite", dependencies: ["ABI", "MachineInterface", "Harness"]),
        // Scenarios: the language (parser, printer), the runner over any Machine with its shadow model
        // and invariant checks, the random generator behind `fuzz`, and the shrinker.
        .target(name: "Scenario", dependencies: ["ABI", "MachineInterface", "Harness"]),
        // Concurrent scenarios and schedule exploration: random and bounded-preemption schedules,
        // each in a process of its own; distinct outcomes and the checkers' reports.
        .target(name: "Explore", dependencies: ["ABI", "MachineInterface", "Syscalls", "Harness", system]),
        // Per-ioctl latency and the page-table walks of the migrate-on-fault sequences, on any machine.
        .target(name: "Bench", dependencies: ["ABI", "MachineInterface", "Syscalls"]),
        // The executable: the only place that knows both backends.
        .executableTarget(
            name: "dmirror",
            dependencies: [
                "ABI", "MachineInterface", "Syscalls", "Linux", "Simulator", "Harness", "Suite", "Scenario", "Explore", "Bench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/CLI"
        ),
        .testTarget(
            name: "DmirrorTests",
            // dmirror: the tests spawn the built executable (a build-order dependency, not imported).
            dependencies: [
                "dmirror", "ABI", "MachineInterface", "Syscalls", "Linux", "Simulator", "Harness", "Suite", "Scenario",
                "Explore", system, .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            path: "Tests/DmirrorTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
