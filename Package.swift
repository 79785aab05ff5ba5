// swift-tools-version:6.1
import PackageDescription

// OpenVINO's headers and libraries come from the pinned PyPI wheel, unpacked by scripts/setup.sh
// into .deps/openvino (ignored by git). The rpath lets the binaries find them without
// LD_LIBRARY_PATH.
let root = Context.packageDirectory
let openVINO = "\(root)/.deps/openvino"
let openVINOHeaders: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-I\(openVINO)/include"])]

let package = Package(
    name: "FaceSocial",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "facesocial", targets: ["facesocial"])
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver.git", from: "4.9.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        // Layer 1: the only C boundary.
        .target(
            name: "COpenVINO",
            cSettings: [.unsafeFlags(["-I\(openVINO)/include"])],
            linkerSettings: [
                .unsafeFlags(["-L\(openVINO)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(openVINO)/lib"]),
                .linkedLibrary("openvino_c"),
            ]
        ),
        .systemLibrary(name: "CImageCodecs"),
        // Layer 2: pure computation on images, tensors and faces.
        .target(
            name: "FaceKit",
            dependencies: ["CImageCodecs"]
        ),
        // Layer 3: inference engines, model manifest, memory management.
        .target(
            name: "ModelRuntime",
            dependencies: [
                "FaceKit", "COpenVINO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: openVINOHeaders
        ),
        // Layer 4: the HTTP application.
        .target(
            name: "FaceSocialServer",
            dependencies: [
                "FaceKit", "ModelRuntime",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: openVINOHeaders
        ),
        // Layer 5: the executable.
        .executableTarget(
            name: "facesocial",
            dependencies: [
                "FaceSocialServer", "ModelRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: openVINOHeaders
        ),
        .testTarget(name: "FaceKitTests", dependencies: ["FaceKit"]),
        .testTarget(name: "ModelRuntimeTests", dependencies: ["ModelRuntime"], swiftSettings: openVINOHeaders),
        .testTarget(
            name: "FaceSocialServerTests",
            dependencies: ["FaceSocialServer", .product(name: "VaporTesting", package: "vapor")],
            swiftSettings: openVINOHeaders
        ),
        .testTarget(name: "facesocialTests", dependencies: ["facesocial"], swiftSettings: openVINOHeaders),
    ]
)
