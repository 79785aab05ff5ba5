// swift-tools-version:6.1
import Foundation
import PackageDescription

// OpenVINO's headers and libraries come from the pinned PyPI wheel, unpacked by scripts/setup.sh
// into .deps/openvino (ignored by git). The rpath lets the binaries find them without
// LD_LIBRARY_PATH.
let root = Context.packageDirectory
let openVINO = "\(root)/.deps/openvino"
// ONNX Runtime (NVIDIA GPUs): the C header from Debian trixie's libonnxruntime-dev and the library
// from the pinned PyPI wheel, both unpacked by scripts/lib/fetch_onnxruntime.sh into .deps/onnxruntime.
let onnxRuntime = "\(root)/.deps/onnxruntime"
let onnxRuntimeInclude = "\(onnxRuntime)/header/usr/include/onnxruntime"
// The image build's context holds the sources only (deploy/docker/*.dockerignore), so the test
// targets are declared where their folder is.
let testTargets: [Target] =
    FileManager.default.fileExists(atPath: "\(root)/Tests")
    ? [
        .testTarget(name: "FaceKitTests", dependencies: ["FaceKit", "CImageCodecs"]),
        .testTarget(name: "FaceSearchTests", dependencies: ["FaceSearch", "CVectorKernels"]),
        .testTarget(name: "ModelRuntimeTests", dependencies: ["ModelRuntime", "FaceKit"]),
        .testTarget(
            name: "FaceSocialServerTests",
            dependencies: [
                "FaceSocialServer", "FaceSearch", "FaceKit", "ModelRuntime", "CVectorKernels", "CImageCodecs",
                .product(name: "VaporTesting", package: "vapor"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLKit", package: "sql-kit"),
            ]
        ),
        .testTarget(name: "facesocialTests", dependencies: ["facesocial"]),
    ] : []

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
        // 4.x is what jwt-kit needs; 3.x still satisfies the rest.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/jwt.git", from: "5.2.0"),
        // Imported directly, so declared (each also comes with vapor, fluent or jwt).
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/vapor/fluent-kit.git", from: "1.57.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/async-kit.git", from: "1.22.0"),
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
        .target(
            name: "CONNXRuntime",
            cSettings: [.unsafeFlags(["-I\(onnxRuntimeInclude)"])],
            linkerSettings: [
                .unsafeFlags(["-L\(onnxRuntime)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(onnxRuntime)/lib"]),
                .linkedLibrary("onnxruntime"),
            ]
        ),
        .systemLibrary(name: "CImageCodecs"),
        // glibc's allocator statistics and trim, which the Glibc module does not export.
        .target(name: "CAllocator"),
        // The identify search's dot products, with AVX-512 / AVX2 kernels chosen at run time.
        .target(name: "CVectorKernels"),
        // The identify search's indexes (exact, and the 8-bit inverted file for large galleries).
        .target(name: "FaceSearch", dependencies: ["CVectorKernels"]),
        // Its benchmark and self-check (`facesocial-search-bench`, scripts/bench-search.sh).
        .executableTarget(name: "facesocial-search-bench", dependencies: ["FaceSearch", "CVectorKernels"]),
        // Layer 2: pure computation on images, tensors and faces.
        // The letterbox's resampling with AVX-512 gathers, chosen at run time.
        .target(name: "CImageKernels"),
        .target(
            name: "FaceKit",
            dependencies: ["CImageCodecs", "CImageKernels"]
        ),
        // Layer 3: inference. The engine protocols, each engine in its own target (its C module
        // imported `internal`, so the header flags stay there), then the manifest, memory
        // management and admission over them.
        .target(name: "EngineCore", dependencies: ["FaceKit"]),
        .target(
            name: "OpenVINOBackend", dependencies: ["EngineCore", "FaceKit", "COpenVINO"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(openVINO)/include"])]
        ),
        .target(
            name: "ONNXRuntimeBackend", dependencies: ["EngineCore", "FaceKit", "CONNXRuntime"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(onnxRuntimeInclude)"])]
        ),
        .target(
            name: "ModelRuntime",
            dependencies: [
                "FaceKit", "EngineCore", "OpenVINOBackend", "ONNXRuntimeBackend", "CAllocator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Layer 4: the HTTP application.
        .target(
            name: "FaceSocialServer",
            dependencies: [
                "FaceKit", "ModelRuntime", "FaceSearch",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "JWT", package: "jwt"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncKit", package: "async-kit"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The web console's files (docs/console.md), installed next to the binary as the
            // FaceSocial_FaceSocialServer.resources folder.
            resources: [.copy("Console/web")]
        ),
        // Layer 5: the executable.
        .executableTarget(
            name: "facesocial",
            dependencies: [
                "FaceSocialServer", "ModelRuntime", "FaceSearch", "FaceKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Vapor", package: "vapor"),
            ]
        ),
    ] + testTargets
)
