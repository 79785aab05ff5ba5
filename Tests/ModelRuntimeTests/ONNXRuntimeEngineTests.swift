import FaceKit
import Foundation
import Testing

@testable import ModelRuntime

/// One OpenVINO and one ONNX Runtime session per model, both float32 on CPU, shared by the tests.
private actor EnginePair {
    static let shared = EnginePair()
    private var sessions: [String: (openVINO: any InferenceSession, onnxRuntime: any InferenceSession)] = [:]

    func sessions(_ file: String, input: String, shape: [Int]) throws -> (
        openVINO: any InferenceSession, onnxRuntime: any InferenceSession
    ) {
        if let pair = sessions[file] { return pair }
        let path = modelDirectory.appendingPathComponent(file).path
        let options = SessionOptions(precision: .f32, inputShapes: [input: shape])
        let pair = (
            try OpenVINOEngine().load(modelAt: path, options: options),
            try ONNXRuntimeEngine().load(modelAt: path, options: options)
        )
        sessions[file] = pair
        return pair
    }

    func yunet() throws -> (openVINO: any InferenceSession, onnxRuntime: any InferenceSession) {
        try sessions("detection/yunet_2023mar.onnx", input: YuNet.inputName, shape: [1, 3, 640, 640])
    }
    func sface() throws -> (openVINO: any InferenceSession, onnxRuntime: any InferenceSession) {
        try sessions("recognition/sface_2021dec.onnx", input: FaceRecognizer.sface.inputName, shape: [1, 3, 112, 112])
    }
}

private func photo(_ name: String) throws -> RGBImage {
    let bytes = [UInt8](try Data(contentsOf: TestSessions.testData.appendingPathComponent(name)))
    return try ImageDecoder.decode(bytes)
}

@Suite("ONNX Runtime engine")
struct ONNXRuntimeEngineTests {
    @Test func reportsVersionAndPorts() async throws {
        let engine = try ONNXRuntimeEngine()
        #expect(engine.libraryVersion.hasPrefix("1."))
        #expect(try engine.compiledProviders().contains("CPUExecutionProvider"))
        let session = try await EnginePair.shared.yunet().onnxRuntime
        #expect(session.inputs == [TensorInfo(name: "input", shape: [1, 3, 640, 640])])
        #expect(Set(session.outputs.map(\.name)).isSuperset(of: ["cls_8", "obj_16", "bbox_32", "kps_8"]))
        let outputs = try await session.infer(["input": Tensor(zeros: [1, 3, 640, 640])])
        #expect(outputs["cls_8"]?.shape == [1, 6400, 1])
    }

    @Test(arguments: ["group6_t1.jpg", "two_people.jpg", "obama.jpg"])
    func yunetDetectionsMatchOpenVINO(_ name: String) async throws {
        let (openVINO, onnxRuntime) = try await EnginePair.shared.yunet()
        let image = try photo(name)
        let reference = try await YuNet().detect(image, runner: openVINO, options: DetectionOptions()).faces
        let faces = try await YuNet().detect(image, runner: onnxRuntime, options: DetectionOptions()).faces
        #expect(!reference.isEmpty)
        #expect(faces.count == reference.count, "\(name): \(faces.count) faces vs \(reference.count) from OpenVINO")
        var worst: Float = 0
        for expected in reference {
            // Pair each OpenVINO face with the nearest ONNX Runtime face (equal scores may reorder).
            let face = try #require(
                faces.min { distance($0.box, expected.box) < distance($1.box, expected.box) })
            let boxDelta = max(
                abs(face.box.x - expected.box.x), abs(face.box.y - expected.box.y),
                abs(face.box.width - expected.box.width), abs(face.box.height - expected.box.height))
            let landmarkDelta =
                zip(face.landmarks, expected.landmarks).map { max(abs($0.x - $1.x), abs($0.y - $1.y)) }
                .max() ?? .infinity
            worst = max(worst, boxDelta, landmarkDelta)
            #expect(boxDelta <= 1, "\(name): box differs by \(boxDelta) px")
            #expect(landmarkDelta <= 1, "\(name): landmarks differ by \(landmarkDelta) px")
            #expect(abs(face.score - expected.score) < 1e-3)
        }
        print("\(name): \(faces.count) faces, largest difference from OpenVINO \(worst) px")
    }

    @Test func sfaceEmbeddingsMatchOpenVINO() async throws {
        let (detector, _) = try await EnginePair.shared.yunet()
        let (openVINO, onnxRuntime) = try await EnginePair.shared.sface()
        let names = [
            "obama.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg", "obama-1080p.jpg", "biden.jpg",
            "biden_biden2.jpg", "kit_harington_john1.jpeg", "kit_harington_john2.jpeg", "rose_leslie_img1.jpg",
            "rose_leslie_img2.jpg",
        ]
        for name in names {
            let image = try photo(name)
            let faces = try await YuNet().detect(image, runner: detector, options: DetectionOptions()).faces
            let face = try #require(faces.max { $0.box.area < $1.box.area }, "no face in \(name)")
            let expected = try await FaceRecognizer.sface.embed(image, face: face, runner: openVINO)
            let embedding = try await FaceRecognizer.sface.embed(image, face: face, runner: onnxRuntime)
            let cosine = EmbeddingMath.cosine(expected, embedding)
            #expect(cosine >= 0.999, "\(name): cosine \(cosine) between the engines")
        }
    }

    @Test func errorsCarryONNXRuntimesMessage() async throws {
        let engine = try ONNXRuntimeEngine()
        let missing = "/nonexistent/facesocial/model.onnx"
        do {
            _ = try engine.load(modelAt: missing, options: SessionOptions())
            Issue.record("loading a missing file must fail")
        } catch let error as ONNXRuntimeError {
            #expect(error.function.hasPrefix("CreateSession"))
            #expect(error.message.contains(missing), "ORT's message names the file: \(error.message)")
        }
        // A file that is not a model: ORT's parser message comes through.
        let junk = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-junk-\(UUID()).onnx")
        try Data("not a model".utf8).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }
        #expect(throws: ONNXRuntimeError.self) { try engine.load(modelAt: junk.path, options: SessionOptions()) }

        let session = try await EnginePair.shared.yunet().onnxRuntime
        await #expect(throws: InferenceError.self) {
            try await session.infer(["image": Tensor(zeros: [1, 3, 640, 640])])
        }
        await #expect(throws: InferenceError.self) {
            try await session.infer(["input": Tensor(zeros: [1, 3, 320, 320])])
        }
    }

    @Test func unknownDeviceIsAnError() throws {
        let engine = try ONNXRuntimeEngine()
        #expect(throws: ONNXRuntimeError.self) {
            try engine.load(modelAt: "x.onnx", options: SessionOptions(device: "NPU"))
        }
    }

    /// This machine has the CPU build of ONNX Runtime and no NVIDIA GPU: asking for CUDA must fall
    /// back to CPU with ORT's reason, and the model must still run.
    @Test func cudaFallsBackToCPUWithTheReason() async throws {
        let ort = try ONNXRuntimeEngine(configuration: .init(cudaDevices: [0]))
        let cudaUsable = ort.probe(device: "CUDA:0").available
        let router = EngineRouter(engines: ["CPU": try OpenVINOEngine(), "CUDA": ort])
        router.probe(["CUDA:0"])
        let path = modelDirectory.appendingPathComponent("detection/yunet_2023mar.onnx").path
        let session = try router.load(
            modelAt: path, options: SessionOptions(device: "CUDA:0", inputShapes: ["input": [1, 3, 640, 640]]))
        let cuda = try #require(router.deviceAvailability().first { $0.device == "CUDA:0" })
        if cudaUsable {
            // A lent GPU machine with the GPU build: the model must be on the GPU.
            #expect(session.device == "CUDA:0")
            #expect(cuda.available)
        } else {
            #expect(session.device == "CPU")
            #expect(!cuda.available)
            let reason = try #require(cuda.reason)
            #expect(reason.contains("CUDA"), "the reason is ORT's own: \(reason)")
            #expect(router.fallbackCounts()["CUDA:0"] == 1)
            #expect(try !router.availableDevices().contains("CUDA:0"))
            print("CUDA:0 unavailable: \(reason)")
        }
        let outputs = try await session.infer(["input": Tensor(zeros: [1, 3, 640, 640])])
        #expect(outputs["cls_8"]?.shape == [1, 6400, 1])
    }

    @Test func deviceNames() {
        #expect(DeviceName("CUDA:1") == DeviceName("cuda:1"))
        #expect(DeviceName("CUDA:1").ordinal == 1)
        #expect(DeviceName("CPU").kind == "CPU")
        #expect(DeviceName("CPU").ordinal == nil)
    }
}

private func distance(_ a: Box, _ b: Box) -> Float { abs(a.x - b.x) + abs(a.y - b.y) }
