// swift-tools-version:5.9
// The Swift package of meterline. scripts/uniffi-generate.sh writes Sources/Meterline/
// Meterline.swift and Sources/meterlineFFI/include/ from the built library; the native
// library itself (libmeterline_uniffi) is linked from METERLINE_LIB_DIR — the script builds
// it into target/<host triple>/release — and on iOS from the XCFramework (README; unverified).
import PackageDescription
import Foundation

let libDir = ProcessInfo.processInfo.environment["METERLINE_LIB_DIR"] ?? "../../target/release"

let package = Package(
    name: "Meterline",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "Meterline", targets: ["Meterline"]),
    ],
    targets: [
        .target(name: "meterlineFFI", path: "Sources/meterlineFFI"),
        .target(
            name: "Meterline",
            dependencies: ["meterlineFFI"],
            path: "Sources/Meterline",
            linkerSettings: [
                .unsafeFlags(["-L\(libDir)"]),
                .linkedLibrary("meterline_uniffi"),
            ]
        ),
        .testTarget(name: "MeterlineTests", dependencies: ["Meterline"], path: "Tests/MeterlineTests"),
    ]
)
