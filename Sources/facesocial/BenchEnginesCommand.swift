import ArgumentParser
import FaceKit
import FaceSocialServer
import Foundation
import ModelRuntime

extension BenchCommand {
    /// Inference time of every model on each engine and device, and how far each result is from
    /// OpenVINO on CPU (the reference) on the test photos. docs/gpu.md holds its tables.
    struct Engines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare engines and devices: inference time per model, agreement with OpenVINO on CPU.")
        @Option(help: "Comma-separated targets engine@device, e.g. openvino@CPU,onnxruntime@CPU,onnxruntime@CUDA:0.")
        var targets = "openvino@CPU,onnxruntime@CPU"
        @Option(help: "Timed iterations per model after warm-up.") var iterations = 30
        @Option(help: "Warm-up iterations.") var warmup = 3
        @Option(help: "Folder of the shared test photos.") var testdata = "../shared/testdata"

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let store = try ModelStore(manifestURL: config.manifestURL, directory: config.modelDirectory)
            let ort = try ONNXRuntimeEngine(configuration: config.engines.onnxRuntime)
            let openVINO = try OpenVINOEngine()
            print(
                "ONNX Runtime \(ort.libraryVersion), providers: \(try ort.compiledProviders().joined(separator: ", "))")
            let wanted = targets.split(separator: ",").map { $0.split(separator: "@").map(String.init) }
            var sessions: [(label: String, id: String, session: any InferenceSession)] = []
            var reference: [String: any InferenceSession] = [:]
            var unavailable: [String] = []
            for entry in store.manifest.models {
                let path = store.url(for: entry).path
                let cpu = SessionOptions(precision: .f32, inputShapes: [entry.input.name: entry.input.shape])
                reference[entry.id] = try openVINO.load(modelAt: path, options: cpu)
                for target in wanted where target.count == 2 {
                    let engine: any InferenceEngine = target[0] == "openvino" ? openVINO : ort
                    var options = cpu
                    options.device = target[1]
                    let label = "\(target[0])@\(target[1])"
                    do {
                        sessions.append((label, entry.id, try engine.load(modelAt: path, options: options)))
                    } catch let error as DeviceUnavailableError {
                        if !unavailable.contains(label) { print("\(label) unavailable: \(error.reason)") }
                        unavailable.append(label)
                    }
                }
            }

            var rows: [[String]] = []
            for (label, id, session) in sessions {
                let input = store.manifest.entry(id)!.input
                var generator = SystemRandomNumberGenerator()
                let count = input.shape.reduce(1, *)
                let tensor = Tensor(
                    shape: input.shape, data: (0..<count).map { _ in Float.random(in: 0..<255, using: &generator) })
                var samples: [Double] = []
                for round in 0..<(warmup + iterations) {
                    let start = ContinuousClock.now
                    _ = try await session.infer([input.name: tensor])
                    if round >= warmup { samples.append((ContinuousClock.now - start).milliseconds) }
                }
                samples.sort()
                let mean = samples.reduce(0, +) / Double(samples.count)
                rows.append([
                    id, label, format(mean), format(percentile(samples, 0.5)), format(percentile(samples, 0.95)),
                ])
            }
            printTable(header: ["model", "engine@device", "mean ms", "p50 ms", "p95 ms"], rows: rows)

            // Agreement with OpenVINO on CPU: YuNet boxes and landmarks, SFace embeddings.
            guard let referenceYuNet = reference["yunet"], let referenceSFace = reference["sface"] else { return }
            print("")
            var agreement: [[String]] = []
            let photos = [
                "group6_t1.jpg", "two_people.jpg", "obama.jpg", "obama2.jpg", "biden.jpg", "rose_leslie_img1.jpg",
            ]
            for label in Set(sessions.map(\.label)).sorted() {
                guard let yunet = sessions.first(where: { $0.label == label && $0.id == "yunet" })?.session,
                    let sface = sessions.first(where: { $0.label == label && $0.id == "sface" })?.session
                else { continue }
                var worstPixels: Float = 0
                var lowestCosine: Float = 1
                var faceCounts = true
                for name in photos {
                    let bytes = try [UInt8](
                        Data(contentsOf: URL(fileURLWithPath: testdata).appendingPathComponent(name)))
                    let image = try ImageDecoder.decode(bytes, limits: config.imageLimits)
                    let expected = try await YuNet().detect(image, runner: referenceYuNet, options: DetectionOptions())
                        .faces
                    let faces = try await YuNet().detect(image, runner: yunet, options: DetectionOptions()).faces
                    faceCounts = faceCounts && faces.count == expected.count
                    for (a, b) in zip(expected.sorted { $0.box.x < $1.box.x }, faces.sorted { $0.box.x < $1.box.x }) {
                        let points = zip(a.landmarks, b.landmarks).map { max(abs($0.x - $1.x), abs($0.y - $1.y)) }
                        worstPixels = max(
                            worstPixels, abs(a.box.x - b.box.x), abs(a.box.y - b.box.y), abs(a.box.width - b.box.width),
                            abs(a.box.height - b.box.height), points.max() ?? 0)
                    }
                    if let face = expected.max(by: { $0.box.area < $1.box.area }) {
                        let e1 = try await FaceRecognizer.sface.embed(image, face: face, runner: referenceSFace)
                        let e2 = try await FaceRecognizer.sface.embed(image, face: face, runner: sface)
                        lowestCosine = min(lowestCosine, EmbeddingMath.cosine(e1, e2))
                    }
                }
                agreement.append([
                    label, faceCounts ? "yes" : "NO", String(format: "%.3f", worstPixels),
                    String(format: "%.5f", lowestCosine),
                ])
            }
            printTable(
                header: ["engine@device", "same face counts", "max box/landmark px", "min SFace cosine"],
                rows: agreement)
            if !unavailable.isEmpty {
                print("not measured (unavailable): \(Set(unavailable).sorted().joined(separator: ", "))")
            }
        }
    }
}
