import ArgumentParser
import FaceKit
import FaceSearch
import FaceSocialServer
import Foundation
import ModelRuntime

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Micro benchmarks of the face pipelines (build with -c release for real numbers).",
        subcommands: [
            Detect.self, Micro.self, Thresholds.self, Faces.self, Engines.self, Batching.self, Search.self, Routes.self,
            Analyses.self,
        ]
    )

    struct Detect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time each stage of detection on one image: decode, preprocess, inference, postprocess.")
        @Argument(help: "Image file.") var image: String
        @Option(help: "Timed iterations after warm-up.") var iterations = 50
        @Option(help: "Warm-up iterations.") var warmup = 5
        @Flag(help: "Decode at full size (as the analysis routes do) instead of as /v1/detect does.")
        var fullDecode = false

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            let session = try await registry.session(for: "yunet")
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: image)))
            let detector = YuNet()
            var samples: [String: [Double]] = [:]
            var faceCount = 0
            for round in 0..<(warmup + iterations) {
                var decodeMs = 0.0
                // /v1/detect decodes large JPEGs at a reduced size (ImageDecoder.decode(_:limits:minimumLongSide:)).
                let decoded = try measure(&decodeMs) {
                    fullDecode
                        ? try ImageDecoder.decode(bytes, limits: config.imageLimits)
                        : try ImageDecoder.decode(bytes, limits: config.imageLimits, minimumLongSide: YuNet.inputSize)
                            .image
                }
                let (faces, timings) = try await detector.detect(decoded, runner: session, options: DetectionOptions())
                faceCount = faces.count
                guard round >= warmup else { continue }
                samples["1 decode", default: []].append(decodeMs)
                samples["2 preprocess", default: []].append(timings.preprocessMs)
                samples["3 inference", default: []].append(timings.inferenceMs)
                samples["4 postprocess", default: []].append(timings.postprocessMs)
                samples["5 total", default: []].append(
                    decodeMs + timings.preprocessMs + timings.inferenceMs + timings.postprocessMs)
            }
            print(
                "detect on \(image): \(faceCount) faces, \(iterations) iterations, yunet \(await tuned(registry, "yunet")), "
                    + (fullDecode ? "full-size decode" : "decoded as /v1/detect does"))
            let rows = samples.keys.sorted().map { key -> [String] in
                let values = samples[key]!.sorted()
                let mean = values.reduce(0, +) / Double(values.count)
                return [
                    String(key.dropFirst(2)), format(mean), format(percentile(values, 0.5)),
                    format(percentile(values, 0.95)),
                ]
            }
            printTable(header: ["stage", "mean ms", "p50 ms", "p95 ms"], rows: rows)
        }
    }
}

extension BenchCommand {
    /// Measures what the default thresholds are chosen from: the recognizer's similarity of every
    /// same- and different-identity pair of the test photos, and MiniFAS margins of every detected face.
    struct Thresholds: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Similarity and liveness distributions on the test identities (docs/thresholds.md).")
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"
        @Option(help: "Recognition model: sface, or w600k_mbf (needs FACESOCIAL_ACCEPT_MODEL_LICENCES).")
        var model = RecognitionModel.standard.id

        static let identities: [(String, [String])] = [
            ("obama", ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg", "obama-1080p.jpg"]),
            ("biden", ["biden.jpg", "biden_biden2.jpg"]),
            ("kit_harington", ["kit_harington_john1.jpeg", "kit_harington_john2.jpeg"]),
            ("rose_leslie", ["rose_leslie_img1.jpg", "rose_leslie_img2.jpg"]),
        ]

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            let yunet = try await registry.session(for: "yunet")
            guard let recognizer = RecognitionModel.named(model) else {
                throw ValidationError("no recognition model \(model)")
            }
            let sface = try await registry.session(for: recognizer.id)
            let network = recognizer.network
            let minifas = try await registry.session(for: "minifas")
            func load(_ file: String) throws -> RGBImage {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(file)))
                return try ImageDecoder.decode(bytes, limits: config.imageLimits)
            }

            var embeddings: [(identity: String, file: String, vector: [Float])] = []
            for (identity, files) in Self.identities {
                for file in files {
                    let image = try load(file)
                    let (faces, _) = try await YuNet().detect(image, runner: yunet, options: DetectionOptions())
                    guard let face = faces.max(by: { $0.box.area < $1.box.area }) else {
                        print("\(file): no face")
                        continue
                    }
                    embeddings.append((identity, file, try await network.embed(image, face: face, runner: sface)))
                }
            }
            var same: [Double] = []
            var different: [Double] = []
            var rows: [[String]] = []
            for (i, a) in embeddings.enumerated() {
                for b in embeddings[(i + 1)...] {
                    let similarity = Double(EmbeddingMath.cosine(a.vector, b.vector))
                    if a.identity == b.identity { same.append(similarity) } else { different.append(similarity) }
                    rows.append([a.file, b.file, a.identity == b.identity ? "same" : "different", format(similarity)])
                }
            }
            rows.sort { $0[2] == $1[2] ? Double($0[3])! > Double($1[3])! : $0[2] > $1[2] }
            printTable(header: ["image a", "image b", "pair", "cosine"], rows: rows)
            print("")
            for (name, values) in [("same person", same.sorted()), ("different people", different.sorted())] {
                let mean = values.reduce(0, +) / Double(values.count)
                print(
                    "\(name): n=\(values.count) min=\(format(values.first!)) p50=\(format(percentile(values, 0.5))) "
                        + "mean=\(format(mean)) max=\(format(values.last!))")
            }
            print("gap: highest different \(format(different.max()!)) < lowest same \(format(same.min()!))")

            // Best face against template (identify's match_mode), leaving one photo out: each
            // identity enrols its other photos, each as taken, mirrored, darker and brighter
            // (four faces a photo); the held-out photo as taken is the query. Same person: the
            // query's own identity; different: the best-scored other identity.
            func variants(_ image: RGBImage) -> [RGBImage] {
                var mirrored = image.pixels
                for y in 0..<image.height {
                    for x in 0..<(image.width / 2) {
                        for c in 0..<3 {
                            mirrored.swapAt(
                                (y * image.width + x) * 3 + c, (y * image.width + image.width - 1 - x) * 3 + c)
                        }
                    }
                }
                func scaled(_ factor: Float) -> [UInt8] {
                    image.pixels.map { UInt8(min(255, (Float($0) * factor).rounded())) }
                }
                return [
                    image, RGBImage(width: image.width, height: image.height, pixels: mirrored),
                    RGBImage(width: image.width, height: image.height, pixels: scaled(0.6)),
                    RGBImage(width: image.width, height: image.height, pixels: scaled(1.4)),
                ]
            }
            var enrolled: [(identity: String, file: String, vector: [Float])] = []
            for (identity, files) in Self.identities {
                for file in files {
                    for variant in variants(try load(file)) {
                        let (faces, _) = try await YuNet().detect(variant, runner: yunet, options: DetectionOptions())
                        guard let face = faces.max(by: { $0.box.area < $1.box.area }) else { continue }
                        enrolled.append((identity, file, try await network.embed(variant, face: face, runner: sface)))
                    }
                }
            }
            var modeRows: [[String]] = []
            var lowestSame: [MatchMode: Double] = [:]
            var highestDifferent: [MatchMode: Double] = [:]
            for query in embeddings {
                let gallery = enrolled.filter { $0.file != query.file }
                let q = EmbeddingMath.normalized(query.vector)
                var scores: [MatchMode: [String: Double]] = [:]
                for identity in Set(gallery.map(\.identity)) {
                    let rows = gallery.filter { $0.identity == identity }.map { EmbeddingMath.normalized($0.vector) }
                    scores[.best, default: [:]][identity] = Double(rows.map { EmbeddingMath.cosine(q, $0) }.max()!)
                    scores[.template, default: [:]][identity] = Double(
                        EmbeddingMath.cosine(q, SubjectTemplates.template(rows)!))
                }
                guard scores[.best]?[query.identity] != nil else { continue }  // no other photo of them
                var cells = [query.file]
                for mode in MatchMode.allCases {
                    let own = scores[mode]![query.identity]!
                    let other = scores[mode]!.filter { $0.key != query.identity }.values.max()!
                    lowestSame[mode] = min(lowestSame[mode] ?? 2, own)
                    highestDifferent[mode] = max(highestDifferent[mode] ?? -2, other)
                    cells += [String(format: "%.3f", own), String(format: "%.3f", other)]
                }
                modeRows.append(cells)
            }
            print("\nIdentify by best face or by template, one photo left out (\(enrolled.count) enrolled faces):")
            printTable(
                header: ["query", "best: same", "best: other", "template: same", "template: other"], rows: modeRows)
            for mode in MatchMode.allCases {
                print(
                    "\(mode.rawValue): lowest same \(String(format: "%.3f", lowestSame[mode]!)), highest different "
                        + String(
                            format: "%.3f, margin %.3f", highestDifferent[mode]!,
                            lowestSame[mode]! - highestDifferent[mode]!)
                )
            }

            print("\nMiniFAS real − spoof margin per detected face (YuNet, confidence 0.6):")
            var margins: [[String]] = []
            let files = Self.identities.flatMap(\.1) + ["tom_hanks.png", "two_people.jpg", "group6_t1.jpg"]
            for file in files {
                let image = try load(file)
                let (faces, _) = try await YuNet().detect(image, runner: yunet, options: DetectionOptions())
                for face in faces {
                    let result = try await MiniFAS().check(image, face: face, runner: minifas, threshold: 0)
                    margins.append([
                        file,
                        String(format: "%.0f,%.0f %.0fx%.0f", face.box.x, face.box.y, face.box.width, face.box.height),
                        format(Double(face.score)), format(Double(result.score)),
                    ])
                }
            }
            printTable(header: ["image", "face box", "detector score", "margin"], rows: margins)
        }
    }
}

extension BenchCommand {
    /// Head pose (five landmarks and mesh) and quality of the largest face of every test photo, as
    /// taken, mirrored, and turned 20° each way (docs/models.md, "Head pose").
    struct Faces: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Head pose and quality per test photo, mirrored and turned ±20° (docs/models.md).")
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            let yunet = try await registry.session(for: "yunet")
            let mesh = try await registry.session(for: "face-mesh")
            let files =
                Thresholds.identities.flatMap(\.1) + ["tom_hanks.png", "two_people.jpg", "obama_partial_face.jpg"]
            var rows: [[String]] = []
            var fractions: [Float] = []
            func f(_ v: Float) -> String { String(format: "%.1f", v) }
            for file in files {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(file)))
                let original = try ImageDecoder.decode(bytes, limits: config.imageLimits)
                for (variant, image) in [
                    ("", original), ("mirrored", original.mirrored()), ("+20°", original.rotated(degrees: 20)),
                    ("-20°", original.rotated(degrees: -20)),
                ] {
                    let (faces, _) = try await YuNet().detect(image, runner: yunet, options: DetectionOptions())
                    guard let face = faces.max(by: { $0.box.area < $1.box.area }) else {
                        rows.append([file, variant, "no face", "", "", "", "", "", "", "", "", ""])
                        continue
                    }
                    let l = face.pose
                    let m = try await FaceMesh().landmarks(image, face: face, runner: mesh).pose
                    let q = FaceQualityAssessor.assess(image: image, face: face)
                    if variant.isEmpty { fractions.append(Self.noseFraction(face)) }
                    rows.append([
                        file, variant, f(l.yaw), f(l.pitch), f(l.roll), m.map { f($0.yaw) } ?? "–",
                        m.map { f($0.pitch) } ?? "–", m.map { f($0.roll) } ?? "–", String(format: "%.3f", q.score),
                        f(q.size), f(q.sharpness), f(q.brightness),
                    ])
                }
            }
            printTable(
                header: [
                    "photo", "copy", "yaw (5 pt)", "pitch (5 pt)", "roll (5 pt)", "yaw (mesh)", "pitch (mesh)",
                    "roll (mesh)", "quality", "size px", "sharpness", "brightness",
                ], rows: rows)
            try await degradedCopies(files: files, yunet: yunet, config: config)
            let sorted = fractions.sorted()
            print(
                "nose fraction between eye line and mouth line, photos as taken: min \(String(format: "%.3f", sorted.first!)) "
                    + "mean \(String(format: "%.3f", sorted.reduce(0, +) / Float(sorted.count))) max \(String(format: "%.3f", sorted.last!))"
            )
        }

        /// The quality checks' measures on the photos as taken and on degraded copies: for each kind
        /// of damage, how many photos still show a face, the measure it should move (min / median /
        /// max) and how many faces each level refuses (docs/thresholds.md, "Quality checks").
        func degradedCopies(files: [String], yunet: any InferenceSession, config: AppConfig) async throws {
            typealias Edit = (RGBImage, DetectedFace) -> RGBImage
            let edits: [(String, String, Edit)] = [
                ("as taken", "size", { image, _ in image }),
                ("box blur r=2", "sharpness", { image, _ in image.boxBlurred(radius: 2) }),
                ("box blur r=4", "sharpness", { image, _ in image.boxBlurred(radius: 4) }),
                ("box blur r=8", "sharpness", { image, _ in image.boxBlurred(radius: 8) }),
                ("brightness x0.35", "brightness", { image, _ in image.brightness(0.35) }),
                ("brightness x0.2", "brightness", { image, _ in image.brightness(0.2) }),
                ("brightness x2", "brightness", { image, _ in image.brightness(2) }),
                ("brightness x3", "brightness", { image, _ in image.brightness(3) }),
                ("face 48 px", "size", { image, face in image.scaled(by: 48 / min(face.box.width, face.box.height)) }),
                ("face 28 px", "size", { image, face in image.scaled(by: 28 / min(face.box.width, face.box.height)) }),
                ("turned 35°", "roll", { image, _ in image.rotated(degrees: 35) }),
                (
                    "cut at the nose", "edge_margin",
                    { image, face in image.cropped(fromColumn: Int(face.landmarks[2].x)) }
                ),
            ]
            var rows: [[String]] = []
            for (label, measure, edit) in edits {
                var values: [Float] = []
                var refused: [QualityFilter: Int] = [:]
                var found = 0
                for file in files {
                    let bytes = try [UInt8](
                        Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(file)))
                    let original = try ImageDecoder.decode(bytes, limits: config.imageLimits)
                    let (faces, _) = try await YuNet().detect(original, runner: yunet, options: DetectionOptions())
                    guard let face = faces.max(by: { $0.box.area < $1.box.area }) else { continue }
                    let image = edit(original, face)
                    // Low detector scores are kept, so that the score itself can be checked.
                    let (seen, _) = try await YuNet().detect(
                        image, runner: yunet, options: DetectionOptions(confidenceThreshold: 0.3))
                    guard let copy = seen.max(by: { $0.box.area < $1.box.area }) else { continue }
                    found += 1
                    let q = FaceQualityAssessor.assess(image: image, face: copy)
                    let value: Float =
                        switch measure {
                        case "sharpness": q.sharpness
                        case "brightness": q.brightness
                        case "roll": abs(q.roll)
                        case "edge_margin": q.edgeMargin
                        default: q.size
                        }
                    values.append(value)
                    for level in [QualityFilter.low, .medium, .high] where !q.problems(level.limits!).isEmpty {
                        refused[level, default: 0] += 1
                    }
                }
                values.sort()
                func v(_ x: Float?) -> String { x.map { String(format: "%.2f", $0) } ?? "–" }
                rows.append([
                    label, "\(found)/\(files.count)", measure, v(values.first),
                    v(values.isEmpty ? nil : values[values.count / 2]),
                    v(values.last), "\(refused[.low] ?? 0)", "\(refused[.medium] ?? 0)", "\(refused[.high] ?? 0)",
                ])
            }
            print("\nQuality checks on degraded copies (largest face; YuNet at 0.3 so weak faces stay):")
            printTable(
                header: ["copy", "faces", "measure", "min", "median", "max", "refused low", "medium", "high"],
                rows: rows)
        }

        /// The nose tip's place along the eye–mouth axis (0 at the eyes, 1 at the mouth).
        static func noseFraction(_ face: DetectedFace) -> Float {
            let p = face.landmarks
            let eyes = Point(x: (p[0].x + p[1].x) / 2, y: (p[0].y + p[1].y) / 2)
            let mouth = Point(x: (p[3].x + p[4].x) / 2, y: (p[3].y + p[4].y) / 2)
            let (ax, ay) = (mouth.x - eyes.x, mouth.y - eyes.y)
            return ((p[2].x - eyes.x) * ax + (p[2].y - eyes.y) * ay) / (ax * ax + ay * ay)
        }
    }
}

extension BenchCommand {
    /// One number per building block: decoding, letterboxing, alignment and each model's inference.
    struct Micro: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time image decode, letterbox, alignment and every model's inference (mean/p50/p95).")
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"
        @Option(help: "Timed iterations per item.") var iterations = 50

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let registry = try FaceSocialApp.makeRegistry(config)
            func bytes(_ file: String) throws -> [UInt8] {
                try [UInt8](Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(file)))
            }
            let jpeg = try bytes("group6_t1.jpg")
            let png = try bytes("tom_hanks.png")
            let image = try ImageDecoder.decode(jpeg)
            let (faces, _) = try await YuNet().detect(
                image, runner: try await registry.session(for: "yunet"), options: DetectionOptions())
            guard let face = faces.first else { throw ValidationError("no face in group6_t1.jpg") }
            let chip = FaceAlignment.chip(image, landmarks: face.landmarks)

            var rows: [[String]] = []
            func time(_ name: String, _ body: () async throws -> Void) async throws {
                let samples = try await timedSamples(iterations, body)
                let mean = samples.reduce(0, +) / Double(samples.count)
                rows.append([name, format(mean), format(percentile(samples, 0.5)), format(percentile(samples, 0.95))])
            }
            try await time("decode JPEG 1280x886") { _ = try ImageDecoder.decode(jpeg) }
            try await time("decode PNG 112x112") { _ = try ImageDecoder.decode(png) }
            try await time("decode JPEG 1280x886 at 1/2 (/v1/detect)") {
                _ = try ImageDecoder.decode(jpeg, minimumLongSide: YuNet.inputSize)
            }
            try await time("letterbox 640x640 BGR") { _ = YuNet().preprocess(image) }
            let half = try ImageDecoder.decode(jpeg, minimumLongSide: YuNet.inputSize).image
            try await time("letterbox 640x640 BGR from 640x443") { _ = YuNet().preprocess(half) }
            try await time("align 112x112 chip") { _ = FaceAlignment.chip(image, landmarks: face.landmarks) }
            // Models this installation cannot run (not installed, or a licence not opted in to)
            // are left out, as `facesocial tune` leaves them.
            let runnable = registry.store.manifest.models.filter {
                registry.store.status(of: $0).isOK && registry.store.isEnabled($0)
            }
            for entry in runnable {
                let session = try await registry.session(for: entry.id)
                let input = Tensor(zeros: entry.input.shape)
                try await time(
                    "infer \(entry.id) \(entry.input.shape.dropFirst().map(String.init).joined(separator: "x"))"
                ) {
                    _ = try await session.run([entry.input.name: input])
                }
            }
            try await time("embed one face (align + SFace)") {
                _ = try await FaceRecognizer.sface.embed(chip: chip, runner: try await registry.session(for: "sface"))
            }
            var choices: [String] = []
            for entry in runnable {
                choices.append("\(entry.id) \(await tuned(registry, entry.id))")
            }
            print("micro benchmarks, \(iterations) iterations; precision/hint: \(choices.joined(separator: ", "))")
            printTable(header: ["item", "mean ms", "p50 ms", "p95 ms"], rows: rows)
        }
    }
}

/// `iterations` timed runs of `body` after three warm-ups, in milliseconds, sorted.
func timedSamples(_ iterations: Int, _ body: () async throws -> Void) async rethrows -> [Double] {
    for _ in 0..<3 { try await body() }
    var samples: [Double] = []
    for _ in 0..<iterations {
        let start = ContinuousClock.now
        try await body()
        samples.append((ContinuousClock.now - start).milliseconds)
    }
    return samples.sorted()
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func format(_ value: Double) -> String { String(format: "%.2f", value) }

/// A loaded model's CPU precision and hint, and whether they were measured, cached or set.
func tuned(_ registry: ModelRegistry, _ id: String) async -> String {
    guard let tuning = await registry.status(id)?.tuning else { return "untuned" }
    return "\(tuning.chosen) (\(tuning.source.rawValue))"
}

extension BenchCommand {
    /// Throughput and latency of a per-face model with and without cross-request batching: the
    /// same concurrent callers, once with FACESOCIAL_BATCH_MAX=1 and once with the batch size.
    struct Batching: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the micro-batcher's gain on a per-face model (docs/benchmarks.md).")
        @Option(help: "Model id (a per-face model).") var model = "sface"
        @Option(help: "Concurrent callers.") var concurrency = 16
        @Option(help: "Inferences per caller.") var perCaller = 40
        @Option(help: "Largest batch for the batched run.") var batch = 8
        @Option(help: "Batch wait in milliseconds.") var waitMs = 3.0

        func run() async throws {
            var rows: [[String]] = []
            for maxBatch in [1, batch] {
                var env = ProcessInfo.processInfo.environment
                env["FACESOCIAL_BATCH_MAX"] = String(maxBatch)
                env["FACESOCIAL_BATCH_WAIT_MS"] = String(waitMs)
                env["FACESOCIAL_QUEUE_LIMIT"] = String(concurrency * 2)
                let config = try AppConfig.fromEnvironment(env)
                let manager = try FaceSocialApp.makeRegistry(config)
                let session = try await manager.load(model)
                let inputs = Dictionary(
                    uniqueKeysWithValues: session.inputs.map { ($0.name, Tensor(zeros: $0.shape)) })
                for _ in 0..<5 { _ = try await session.infer(inputs) }
                let started = ContinuousClock.now
                let perCaller = self.perCaller
                let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
                    for _ in 0..<concurrency {
                        group.addTask {
                            var samples: [Double] = []
                            for _ in 0..<perCaller {
                                var ms = 0.0
                                _ = try await measure(&ms) { try await session.infer(inputs) }
                                samples.append(ms)
                            }
                            return samples
                        }
                    }
                    return try await group.reduce(into: [Double]()) { $0 += $1 }
                }.sorted()
                let seconds = (ContinuousClock.now - started).milliseconds / 1000
                let status = await manager.status(model)
                rows.append([
                    String(maxBatch), String(status?.maxBatch ?? 1), format(Double(latencies.count) / seconds),
                    format(percentile(latencies, 0.5)), format(percentile(latencies, 0.95)),
                ])
                try await manager.unload(model)
            }
            print("\(model): \(concurrency) concurrent callers × \(perCaller) inferences, wait \(waitMs) ms")
            printTable(
                header: ["FACESOCIAL_BATCH_MAX", "compiled max batch", "faces/s", "p50 ms", "p95 ms"], rows: rows)
        }
    }
}
