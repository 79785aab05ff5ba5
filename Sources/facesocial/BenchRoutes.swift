import ArgumentParser
import FaceKit
import FaceSearch
import FaceSocialServer
import Foundation
import ModelRuntime
import NIOPosix

extension BenchCommand {
    /// The throughput ceiling of each route on this machine: the CPU time one request costs when
    /// the route's own pipeline (the FaceService calls the route makes, no HTTP) runs one request
    /// at a time, and `cores ÷ CPU time` as the most the machine could serve. scripts/bench-http.sh
    /// prints these next to the HTTP throughput at concurrency 16 from the same run.
    struct Routes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "CPU time per request and the throughput ceiling it implies, per route (docs/benchmarks.md).")
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"
        @Option(help: "Timed requests per route after warm-up.") var iterations = 60
        @Option(help: "Also write the results as JSON lines to this file.") var json: String?

        struct Result: Codable {
            let route: String
            let photo: String
            let wallMs: Double
            let cpuMs: Double
            let ceiling: Double
            let inProcess: Double
        }

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let pool = NIOThreadPool(numberOfThreads: cores)
            pool.start()
            let faces = FaceService(registry: registry, limits: config.imageLimits, threadPool: pool)
            func photo(_ name: String) throws -> [UInt8] {
                try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(name)))
            }
            let options = DetectionOptions(maxFaces: config.maxFaces)
            let threshold = config.livenessThreshold

            // What each route computes, through the same FaceService calls its handler makes.
            @Sendable func embedded(_ bytes: [UInt8], _ kinds: Set<AnalysisKind>) async throws -> [FaceReport] {
                let (image, detection) = try await faces.decodeAndDetect(bytes, detector: .yunet, options: options)
                return try await faces.analyze(
                    image, faces: detection.faces, kinds: kinds, livenessThreshold: threshold
                ).reports
            }
            var index = EmbeddingIndex(dimension: FaceRecognizer.sface.dimension)
            for name in ["obama.jpg", "biden.jpg", "kit_harington_john1.jpeg", "rose_leslie_img1.jpg"] {
                guard let face = try await embedded(try photo(name), [.embedding]).first?.embedding else {
                    throw ValidationError("no face in \(name)")
                }
                index.add(faceID: UUID(), subjectID: UUID(), vector: EmbeddingMath.normalized(face))
            }
            let gallery = index
            let detectPhoto = try photo("group6_t1.jpg")
            let (verify1, verify2) = (try photo("obama.jpg"), try photo("obama2.jpg"))
            let analyzePhoto = try photo("two_people.jpg")
            let identifyPhoto = try photo("obama2.jpg")
            let routes: [(String, String, @Sendable () async throws -> Void)] = [
                (
                    "detect", "group6_t1.jpg",
                    { _ = try await faces.detectOnly(detectPhoto, detector: .yunet, options: options) }
                ),
                (
                    "verify", "obama.jpg + obama2.jpg",
                    {
                        async let a = embedded(verify1, [.embedding, .quality])
                        async let b = embedded(verify2, [.embedding, .quality])
                        _ = try await (a, b)
                    }
                ),
                (
                    "analyze", "two_people.jpg",
                    { _ = try await embedded(analyzePhoto, [.embedding, .attributes, .liveness, .quality]) }
                ),
                (
                    "identify", "obama2.jpg, 4 people",
                    {
                        for report in try await embedded(identifyPhoto, [.embedding, .quality]) {
                            _ = gallery.search(EmbeddingMath.normalized(report.embedding!), k: 5)
                        }
                    }
                ),
            ]
            var results: [Result] = []
            for (name, photoName, body) in routes {
                for _ in 0..<5 { try await body() }
                var walls: [Double] = []
                let cpuBefore = Self.processCPUSeconds()
                for _ in 0..<iterations {
                    let started = ContinuousClock.now
                    try await body()
                    walls.append((ContinuousClock.now - started).milliseconds)
                }
                let cpuMs = (Self.processCPUSeconds() - cpuBefore) * 1000 / Double(iterations)
                walls.sort()
                // The same pipeline with 16 requests in flight, in process: what the HTTP layer
                // adds or loses shows as the gap between this and the HTTP figure.
                let concurrent = 16
                let started = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<concurrent {
                        group.addTask { for _ in 0..<max(2, iterations / 8) { try await body() } }
                    }
                    try await group.waitForAll()
                }
                let seconds = (ContinuousClock.now - started).milliseconds / 1000
                let inProcess = Double(concurrent * max(2, iterations / 8)) / seconds
                results.append(
                    Result(
                        route: name, photo: photoName, wallMs: percentile(walls, 0.5), cpuMs: cpuMs,
                        ceiling: Double(cores) * 1000 / cpuMs, inProcess: inProcess))
            }
            var choices: [String] = []
            for entry in registry.store.manifest.models where await registry.status(entry.id)?.state == .loaded {
                choices.append("\(entry.id) \(await tuned(registry, entry.id))")
            }
            print(
                "routes on \(CPUIdentity.current.description); \(iterations) requests each; \(choices.joined(separator: ", "))"
            )
            printTable(
                header: [
                    "route", "photo", "wall p50 ms (1 at a time)", "CPU ms per request", "ceiling req/s (cores ÷ CPU)",
                    "in process, 16 at once, req/s",
                ],
                rows: results.map {
                    [
                        $0.route, $0.photo, format($0.wallMs), format($0.cpuMs), String(format: "%.1f", $0.ceiling),
                        String(format: "%.1f", $0.inProcess),
                    ]
                })
            try await pool.shutdownGracefully()
            if let json {
                let encoder = JSONEncoder()
                let lines = try results.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
                try (lines.joined(separator: "\n") + "\n").write(toFile: json, atomically: true, encoding: .utf8)
            }
        }

        /// User plus system CPU time of the whole process (every thread: inference, decode, pools).
        static func processCPUSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }
            return seconds(usage.ru_utime) + seconds(usage.ru_stime)
        }
    }
}
