// swift-tools-version:6.2
// A package that depends on Vigil as a user's would: by path here (by URL
// for users), through the `Vigil` product alone, with only public API
// (`make test-consumer` builds and runs it).
import PackageDescription

// A path dependency's package identity is its directory's name (this
// repository's clone: "vigil" for a user's URL dependency, anything here).
let vigil = String(Context.packageDirectory.split(separator: "/").dropLast(2).last!).lowercased()

let package = Package(
    name: "VigilConsumer",
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "VigilConsumer",
            dependencies: [.product(name: "Vigil", package: vigil)]
        ),
    ]
)
