import FaceKit
import Foundation
import Testing

@testable import ModelRuntime

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let manifestURL = packageRoot.appendingPathComponent("models/manifest.json")
let modelDirectory = URL(
    fileURLWithPath: ProcessInfo.processInfo.environment["FACESOCIAL_MODEL_DIR"]
        ?? packageRoot.appendingPathComponent("var/models").path)

@Suite("Manifest and model store")
struct ModelStoreTests {
    @Test func manifestListsEveryServiceWithChecksums() throws {
        let manifest = try ModelManifest.load(from: manifestURL)
        #expect(
            Set(manifest.models.map(\.service)) == [.detection, .recognition, .attributes, .liveness, .landmarks])
        for entry in manifest.models {
            #expect(entry.sha256.count == 64)
            #expect(entry.size > 0)
            #expect(!entry.sources.isEmpty)
        }
    }

    /// Every model is installed and intact, except one under a restricted licence, which the
    /// installer leaves out unless the operator opted in (and the tests never opt var/models in).
    @Test func installedModelsVerify() throws {
        let store = try ModelStore(manifestURL: manifestURL, directory: modelDirectory)
        for entry in store.manifest.models {
            if store.isEnabled(entry) {
                #expect(store.status(of: entry) == .ok, "\(entry.id)")
            } else {
                #expect(store.status(of: entry) == .missing, "\(entry.id) is installed without the opt-in")
            }
        }
        #expect(store.manifest.models.contains { !store.isEnabled($0) }, "the non-commercial model needs an opt-in")
    }

    @Test func aFolderOfSymlinksVerifies() throws {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent(
            "facesocial-links-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temp) }
        let store = try ModelStore(manifestURL: manifestURL, directory: temp)
        for entry in store.manifest.models where store.isEnabled(entry) {
            let link = store.url(for: entry)
            try FileManager.default.createDirectory(
                at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                at: link, withDestinationURL: modelDirectory.appendingPathComponent(entry.file))
            #expect(store.status(of: entry) == .ok, "\(entry.id)")
        }
    }

    @Test func oneChangedByteFailsVerificationAndAMirrorWithABadFileIsRefused() throws {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent(
            "facesocial-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temp) }
        let store = try ModelStore(manifestURL: manifestURL, directory: temp.appendingPathComponent("models"))
        let entry = try #require(store.manifest.entry("yunet"))
        // A mirror holding a copy with one byte changed.
        let mirror = temp.appendingPathComponent("mirror")
        let source = modelDirectory.appendingPathComponent(entry.file)
        var bytes = try Data(contentsOf: source)
        let mirrored = mirror.appendingPathComponent(entry.file)
        try FileManager.default.createDirectory(
            at: mirrored.deletingLastPathComponent(), withIntermediateDirectories: true)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: mirrored)
        #expect(throws: ModelStoreError.self) { try store.pull(entry, mirror: mirror) }
        #expect(store.status(of: entry) == .missing, "a file with a bad checksum must not be installed")
        // The good file installs; then one flipped byte on disk fails verification.
        try FileManager.default.removeItem(at: mirrored)
        try FileManager.default.copyItem(at: source, to: mirrored)
        #expect(try store.pull(entry, mirror: mirror) == "from mirror")
        #expect(store.status(of: entry) == .ok)
        try bytes.write(to: store.url(for: entry))
        guard case .checksumMismatch = store.status(of: entry) else {
            Issue.record("expected a checksum mismatch")
            return
        }
    }
}

@Suite("Process memory")
struct ProcessMemoryTests {
    /// The allocator controls must reach glibc: they once compiled to no-ops (the glibc check ran
    /// before any glibc header was included), so the periodic trim and the unload measurement
    /// never gave anything back.
    @Test func glibcAllocatorIsReachable() throws {
        #if os(Linux)
            let block = UnsafeMutableRawPointer.allocate(byteCount: 64 << 20, alignment: 64)
            block.initializeMemory(as: UInt8.self, repeating: 1, count: 64 << 20)
            let before = try #require(ProcessMemory.allocatorStatistics(), "mallinfo2 unavailable")
            #expect(before.mmapBytes >= 64 << 20, "a 64 MB block is mmapped by glibc: \(before)")
            block.deallocate()
            let after = try #require(ProcessMemory.allocatorStatistics())
            #expect(after.mmapBytes <= before.mmapBytes - (64 << 20))
            // Small blocks freed below a block still in use stay in the arena (only the top of a
            // heap shrinks by itself); malloc_trim gives their pages back and says so.
            let small: [UnsafeMutableRawPointer] = (0..<4096).map { _ in
                let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
                p.initializeMemory(as: UInt8.self, repeating: 1, count: 4096)
                return p
            }
            let pin = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
            for p in small { p.deallocate() }
            #expect(ProcessMemory.trim(), "malloc_trim released nothing")
            pin.deallocate()
        #endif
    }
}

extension ProcessMemoryTests {
    /// The server caps malloc arenas unless the operator set glibc's own variable.
    @Test func arenaCapDefersToMallocArenaMax() {
        #expect(ProcessMemory.limitArenas(2, environment: ["MALLOC_ARENA_MAX": "4"]) == 4)
        #if os(Linux)
            // glibc's own default (8 per core): the test process keeps its allocator as it was.
            let glibcDefault = 8 * ProcessInfo.processInfo.activeProcessorCount
            #expect(ProcessMemory.limitArenas(glibcDefault, environment: [:]) == glibcDefault)
        #endif
    }
}

@Suite("OpenVINO engine")
struct OpenVINOEngineTests {
    @Test func cpuIsAvailable() throws {
        let engine = try OpenVINOEngine()
        #expect(try engine.availableDevices().contains("CPU"))
        #expect(try !engine.property("FULL_DEVICE_NAME", device: "CPU").isEmpty)
    }

    @Test func loadsYuNetAndReportsItsPorts() async throws {
        let engine = try OpenVINOEngine()
        let session = try engine.load(
            modelAt: modelDirectory.appendingPathComponent("detection/yunet_2023mar.onnx").path,
            options: SessionOptions())
        #expect(session.inputs == [TensorInfo(name: "input", shape: [1, 3, 640, 640])])
        #expect(Set(session.outputs.map(\.name)).isSuperset(of: ["cls_8", "obj_16", "bbox_32", "kps_8"]))
        #expect(session.concurrency >= 1)
        let outputs = try await session.infer(["input": Tensor(zeros: [1, 3, 640, 640])])
        #expect(outputs["cls_8"]?.shape == [1, 6400, 1])
    }

    @Test func dynamicInputsAreMadeStatic() throws {
        let engine = try OpenVINOEngine()
        let path = modelDirectory.appendingPathComponent("detection/retinaface_mnet025.onnx").path
        #expect(throws: OpenVINOError.self) { try engine.load(modelAt: path, options: SessionOptions()) }
        let session = try engine.load(
            modelAt: path, options: SessionOptions(inputShapes: ["input": [1, 3, 320, 320]]))
        #expect(session.inputs.first?.shape == [1, 3, 320, 320])
    }

    @Test func errorsCarryOpenVINOsMessage() throws {
        let engine = try OpenVINOEngine()
        do {
            _ = try engine.load(modelAt: "/nonexistent/model.onnx", options: SessionOptions())
            Issue.record("loading a missing file must fail")
        } catch let error as OpenVINOError {
            #expect(error.function.hasPrefix("ov_core_read_model"))
            #expect(error.status != 0)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func wrongInputShapeIsRefusedBeforeInference() async throws {
        let engine = try OpenVINOEngine()
        let session = try engine.load(
            modelAt: modelDirectory.appendingPathComponent("detection/yunet_2023mar.onnx").path,
            options: SessionOptions())
        await #expect(throws: InferenceError.self) {
            try await session.infer(["input": Tensor(zeros: [1, 3, 32, 32])])
        }
        await #expect(throws: InferenceError.self) {
            try await session.infer(["nope": Tensor(zeros: [1, 3, 640, 640])])
        }
    }
}

@Suite("Model registry")
struct ModelRegistryTests {
    func registry(directory: URL = modelDirectory) throws -> ModelRegistry {
        let store = try ModelStore(manifestURL: manifestURL, directory: directory)
        // These tests are about loading, not admission: a wait in a model's queue must not run out
        // because the parallel suites keep the machine busy (seen: 10.5 s for 20 yunet uses in CI).
        var policy = MemoryPolicy()
        policy.queueTimeout = .seconds(600)
        policy.queueLimit = 100_000
        return try ModelRegistry(store: store, engine: try OpenVINOEngine(), policy: policy) { entry in
            SessionOptions(inputShapes: [entry.input.name: entry.input.shape])
        }
    }

    @Test func concurrentFirstUsesShareOneLoad() async throws {
        let registry = try registry()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    let session = try await registry.session(for: "yunet")
                    _ = try await session.infer(["input": Tensor(zeros: [1, 3, 640, 640])])
                }
            }
            try await group.waitForAll()
        }
        let status = try #require(await registry.status("yunet"))
        #expect(status.state == .loaded)
        #expect(status.loads == 1)
        #expect(status.uses == 20)
    }

    /// The manifest's `size_multiple` reaches the CPU session (from the entry, not from the
    /// options the server builds), and an image-shaped input runs through the registry's handle.
    @Test func theManifestsSizeMultipleReachesTheCPUSession() async throws {
        let registry = try registry()
        let session = try await registry.session(for: "yunet")
        #expect(session.flexibleSizeMultiple == 32)
        let outputs = try await session.infer(["input": Tensor(zeros: [1, 3, 448, 640])])
        #expect(outputs["cls_8"]?.shape == [1, 56 * 80, 1])
        let sface = try await registry.session(for: "sface")
        #expect(sface.flexibleSizeMultiple == nil)
    }

    @Test func aCorruptedFileMarksTheModelFailed() async throws {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-reg-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temp) }
        let target = temp.appendingPathComponent("detection/yunet_2023mar.onnx")
        try FileManager.default.createDirectory(
            at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        var bytes = try Data(contentsOf: modelDirectory.appendingPathComponent("detection/yunet_2023mar.onnx"))
        bytes[100] ^= 0xFF
        try bytes.write(to: target)
        let registry = try registry(directory: temp)
        await #expect(throws: ModelRegistryError.self) { try await registry.session(for: "yunet") }
        let status = try #require(await registry.status("yunet"))
        #expect(status.state == .failed)
        #expect(status.failure?.contains("SHA-256") == true)
    }
}
