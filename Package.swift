// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "dmirror",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dmirror", targets: ["dmirror"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The C shim: the dmirror ABI in C terms plus the calls Swift cannot make directly.
        .target(name: "CDmirror", path: "Module"),
        // ABI facts, typed commands, errno, and the real /dev/hmm_dmirrorN.
        .target(name: "DmirrorDevice", dependencies: ["CDmirror"], path: "Sources/Device"),
        // The machine protocol ("a process") and its Linux implementation.
        .target(name: "DmirrorMachine", dependencies: ["DmirrorDevice", "CDmirror"], path: "Sources/Machine"),
        // The simulator: the same protocol, backed by a model of the kernel's mm and test_hmm.
        .target(name: "DmirrorSimulator", dependencies: ["DmirrorMachine", "DmirrorDevice"], path: "Sources/Simulator"),
        // The ported hmm-tests suite and its kselftest-compatible harness.
        .target(name: "DmirrorSuite", dependencies: ["DmirrorMachine", "DmirrorDevice", "DmirrorSimulator", "CDmirror"], path: "Sources/Suite"),
        .executableTarget(
            name: "dmirror",
            dependencies: [
                "DmirrorSuite", "DmirrorMachine", "DmirrorSimulator", "DmirrorDevice", "CDmirror",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/CLI"
        ),
        .testTarget(
            name: "DmirrorTests",
            dependencies: ["dmirror", "DmirrorSuite", "DmirrorMachine", "DmirrorSimulator", "DmirrorDevice", "CDmirror"],
            path: "Tests/DmirrorTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
