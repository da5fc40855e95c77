// swift-tools-version:5.9
// TEMPLATE — NOT VERIFIED: no Xcode on the machines this was written on
// (bindings-swift-kotlin/README.md, "iOS"). The Swift package of meterline for iOS apps:
// scripts/build-xcframework.sh copies this file into ios/dist/Meterline/ beside
// meterlineFFI.xcframework (the static library for devices and simulators, with the C
// header and module map uniffi generates) and Sources/Meterline/Meterline.swift (the same
// generated Swift as ../swift/). Add ios/dist/Meterline to an Xcode project as a local
// package, or publish that directory with the XCFramework zipped
// (`.binaryTarget(name:url:checksum:)`, checksum from `swift package compute-checksum`).
import PackageDescription

let package = Package(
    name: "Meterline",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "Meterline", targets: ["Meterline"]),
    ],
    targets: [
        // The module `meterlineFFI` the generated Swift imports: the XCFramework's headers
        // carry its module map.
        .binaryTarget(name: "meterlineFFI", path: "meterlineFFI.xcframework"),
        .target(name: "Meterline", dependencies: ["meterlineFFI"], path: "Sources/Meterline"),
    ]
)
