// swift-tools-version:6.2
// 6.2: `nonisolated(nonsending)` (Server.Handler, the worker loop).
import PackageDescription

let package = Package(
    name: "Vigil",
    products: [
        .library(name: "Vigil", targets: ["Vigil"]),
        .executable(name: "vigil-demo", targets: ["vigil-demo"]),
        // swift-openapi-runtime's ServerTransport over Vigil: only this
        // product (and the example) depends on the runtime.
        .library(name: "VigilOpenAPI", targets: ["VigilOpenAPI"]),
        .executable(name: "vigil-openapi-example", targets: ["vigil-openapi-example"]),
        // A test kit for users' own tests: a server on a free loopback
        // port, a small client, disconnects on purpose. No new dependency.
        .library(name: "VigilTesting", targets: ["VigilTesting"]),
        // Observability, opt-in: a handler wrapper each, so that a service
        // using one does not build the other's package, and `Vigil` none.
        .library(name: "VigilMetrics", targets: ["VigilMetrics"]),
        .library(name: "VigilTracing", targets: ["VigilTracing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // VigilOpenAPI and the example only; the Vigil target does not use it.
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.0"),
        // VigilMetrics, VigilTracing, their tests, the example's /metrics
        // and the observability benchmark; the Vigil target uses none.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        // 1.7.3: the InMemoryTracing product (the tests' tracer, the
        // benchmark's) as tested here.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // The DocC plugin (`make docs`): a command plugin, no product
        // depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // libuv from Debian's libuv1-dev, found through pkg-config.
        .systemLibrary(
            name: "CLibUV",
            path: "CSources/CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // llhttp 8.1 from Debian's node-llhttp: the files are symlinks into
        // /usr/share/llhttp, nothing is copied. Compiled strict.
        .target(
            name: "CLLHTTP",
            path: "CSources/CLLHTTP",
            cSettings: [.define("LLHTTP_STRICT_MODE", to: "1")]
        ),
        // The C core. Its public header is the top-level include/vigil.h
        // (CSources/CVigil/include is a symlink to it).
        .target(
            name: "CVigil",
            dependencies: ["CLLHTTP", "CLibUV"],
            path: "CSources/CVigil",
            cSettings: [
                .define("LLHTTP_STRICT_MODE", to: "1"),
                .define("_GNU_SOURCE"),
                // VIGIL_ASSERT checks (vigil_internal.h) in debug builds,
                // which the Swift tests, ASan and TSan runs use.
                .define("VIGIL_DEBUG", .when(configuration: .debug)),
            ]
        ),
        .target(
            name: "Vigil",
            dependencies: [
                "CVigil",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Vigil"
        ),
        .executableTarget(
            name: "vigil-demo",
            dependencies: ["Vigil"],
            path: "Sources/vigil-demo"
        ),
        .target(
            name: "VigilOpenAPI",
            dependencies: [
                "Vigil",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            path: "Sources/VigilOpenAPI"
        ),
        .target(
            name: "VigilTesting",
            dependencies: [
                "Vigil",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Sources/VigilTesting"
        ),
        .target(
            name: "VigilMetrics",
            dependencies: [
                "Vigil",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/VigilMetrics"
        ),
        .target(
            name: "VigilTracing",
            dependencies: [
                "Vigil",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Sources/VigilTracing"
        ),
        // examples/openapi: the service (openapi.yaml's generated code, and
        // its implementation), a target of its own so that the tests run
        // it, and the executable serving it.
        .target(
            name: "OpenAPIExampleService",
            dependencies: [
                "Vigil", "VigilOpenAPI", "VigilMetrics",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "examples/openapi/Sources/OpenAPIExampleService"
        ),
        .executableTarget(
            name: "vigil-openapi-example",
            dependencies: [
                "Vigil", "VigilOpenAPI", "OpenAPIExampleService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "examples/openapi/Sources/vigil-openapi-example"
        ),
        // Benchmarks/observe: the cost of VigilMetrics and VigilTracing on
        // a hello handler (make bench-observe).
        .executableTarget(
            name: "vigil-observe-bench",
            dependencies: [
                "Vigil", "VigilMetrics", "VigilTracing",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Benchmarks/observe/Sources/vigil-observe-bench"
        ),
        .testTarget(
            name: "VigilTests",
            dependencies: [
                "Vigil", "CVigil", "VigilTesting",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/VigilTests"
        ),
        .testTarget(
            name: "VigilOpenAPITests",
            dependencies: [
                "Vigil", "CVigil", "VigilOpenAPI", "OpenAPIExampleService", "VigilTesting",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            path: "Tests/VigilOpenAPITests"
        ),
        .testTarget(
            name: "VigilTestingTests",
            dependencies: [
                "Vigil", "VigilTesting",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/VigilTestingTests"
        ),
        .testTarget(
            name: "VigilObservabilityTests",
            dependencies: [
                "Vigil", "VigilMetrics", "VigilTracing", "VigilTesting", "OpenAPIExampleService",
                "VigilOpenAPI",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/VigilObservabilityTests"
        ),
    ]
)
