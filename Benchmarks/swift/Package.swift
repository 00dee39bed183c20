// swift-tools-version:6.0
// Comparison servers for the Vigil benchmarks. A package of its own so that
// SwiftNIO and Hummingbird never enter the main Vigil package's graph.
import PackageDescription

let package = Package(
    name: "vigil-bench-swift",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "nio-bench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/nio-bench"
        ),
        .executableTarget(
            name: "hb-bench",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Sources/hb-bench"
        ),
    ]
)
