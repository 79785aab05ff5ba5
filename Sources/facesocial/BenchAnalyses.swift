import ArgumentParser
import FaceKit
import FaceSocialServer
import Foundation
import ModelRuntime
import NIOPosix

extension BenchCommand {
    /// What each analysis adds to `/v1/analyze`, and what looking for turned faces costs
    /// (docs/benchmarks.md, "Analyses and turned photos"): the route's own FaceService calls, no
    /// HTTP, one request at a time.
    struct Analyses: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time /v1/analyze per analysis kind and detection with auto_rotate (docs/benchmarks.md).")
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"
        @Option(help: "Timed requests per row.") var iterations = 40

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            let pool = NIOThreadPool(numberOfThreads: ProcessInfo.processInfo.activeProcessorCount)
            pool.start()
            let faces = FaceService(registry: registry, limits: config.imageLimits, threadPool: pool)
            func photo(_ name: String) throws -> [UInt8] {
                try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(name)))
            }
            var rows: [[String]] = []
            func time(_ name: String, _ photo: String, _ body: () async throws -> Int) async throws {
                var found = 0
                let samples = try await timedSamples(iterations) { found = try await body() }
                let mean = samples.reduce(0, +) / Double(samples.count)
                rows.append([
                    name, photo, "\(found)", format(mean), format(percentile(samples, 0.5)),
                    format(percentile(samples, 0.95)),
                ])
            }
            let two = try photo("two_people.jpg")
            func analyze(_ kinds: Set<AnalysisKind>) async throws -> Int {
                let (image, detection) = try await faces.decodeAndDetect(
                    two, detector: .yunet, options: DetectionOptions(maxFaces: config.maxFaces))
                return try await faces.analyze(
                    image, faces: detection.faces, kinds: kinds, livenessThreshold: config.livenessThreshold
                ).reports.count
            }
            try await time("analyze: decode + detect + quality and pose", "two_people.jpg") { try await analyze([]) }
            for kind in AnalysisKind.allCases {
                try await time("analyze: + \(kind.rawValue) alone", "two_people.jpg") { try await analyze([kind]) }
            }
            try await time("analyze: default analyses", "two_people.jpg") { try await analyze(AnalysisKind.defaults) }
            try await time("analyze: default + emotion", "two_people.jpg") {
                try await analyze(AnalysisKind.defaults.union([.emotion]))
            }
            // Detection on a decoded photo with each auto_rotate value: without a face (every turn
            // is tried), with a face upright, and with that face turned sideways.
            let noFace = try ImageDecoder.decode(try photo("mask_blue.jpg"))
            let upright = try ImageDecoder.decode(try photo("obama.jpg"))
            for (name, image) in [
                ("mask_blue.jpg", noFace), ("obama.jpg", upright),
                ("obama.jpg turned 90°", upright.turned(clockwise: 90)),
            ] {
                for rotation in [RotationSearch.never, .whenNoFace, .always] {
                    try await time("detect, auto_rotate=\(rotation.rawValue)", name) {
                        var options = DetectionOptions(maxFaces: config.maxFaces)
                        options.rotation = rotation
                        return try await faces.detect(
                            image, detector: .yunet, options: options, orientationTagged: false
                        ).faces.count
                    }
                }
            }
            print("analyses and turned photos, \(iterations) requests a row, one at a time")
            printTable(header: ["what", "photo", "faces", "mean ms", "p50 ms", "p95 ms"], rows: rows)
            try await pool.shutdownGracefully()
        }
    }
}
