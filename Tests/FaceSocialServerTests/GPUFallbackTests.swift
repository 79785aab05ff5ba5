import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Engine configuration and GPU fallback")
struct GPUFallbackTests {
    @Test func engineVariablesParseAndAreListed() throws {
        let config = try testConfig([
            "FACESOCIAL_ENGINE_CPU": "onnxruntime", "FACESOCIAL_CUDA_DEVICES": "0, 1",
            "FACESOCIAL_GPU_PROVIDER": "tensorrt", "FACESOCIAL_CUDA_MEM_LIMIT_MB": "2048",
        ])
        #expect(config.engines.cpuEngine == .onnxruntime)
        #expect(config.engines.cudaDevices == [0, 1])
        #expect(config.engines.placementDevice == "TENSORRT:0")
        #expect(config.engines.cudaMemoryLimitBytes == 2048 * 1024 * 1024)
        #expect(try testConfig().engines.placementDevice == "CPU")
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_CUDA_DEVICES": "gpu0"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_ENGINE_CPU": "tensorflow"]) }
        let listed = Set(ConfigVariable.all.map(\.name))
        for name in [
            "FACESOCIAL_ENGINE_CPU", "FACESOCIAL_CUDA_DEVICES", "CUDA_VISIBLE_DEVICES", "FACESOCIAL_GPU_PROVIDER",
        ] {
            #expect(listed.contains(name), "\(name)")
        }
    }

    /// Asking for CUDA on a machine without a usable one: every request is still served (on CPU),
    /// and the reason is kept for /system/vram.
    @Test func detectSucceedsWhenCUDAIsAskedForButUnavailable() async throws {
        let config = try testConfig(["FACESOCIAL_CUDA_DEVICES": "0"])
        let registry = try FaceSocialApp.makeRegistry(config)
        let router = try #require(registry.engine as? EngineRouter)
        let cuda = try #require(router.deviceAvailability().first { $0.device == "CUDA:0" })
        try await withFaceSocial(["FACESOCIAL_CUDA_DEVICES": "0"], registry: registry) { app in
            var form = Multipart()
            form.file("image", try testImage("two_people.jpg"))
            try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                let body = try json(res)
                #expect(body[path: "data.face_count"] as? Int == 2)
            }
            if !cuda.available {
                // The reason is reported where operators look for devices.
                try await app.testing().test(.GET, "/system/vram") { res in
                    #expect(res.status == .ok)
                    expectConforms("GET", "/system/vram", res)
                    let devices = body(res)[path: "data.engine_devices"] as? [[String: Any]] ?? []
                    let entry = devices.first { $0["device"] as? String == "CUDA:0" }
                    #expect(entry?["available"] as? Bool == false)
                    #expect((entry?["reason"] as? String)?.isEmpty == false)
                }
            }
        }
        // The memory manager places models on CUDA.0 only when NVML reports the GPU and its
        // provider attaches; otherwise the model is in a CPU pool.
        let gpu = registry.inventory.devices.first { $0.name == "CUDA.0" }
        let yunet = try #require(await registry.status("yunet"))
        if cuda.available, gpu?.placeable == true {
            #expect(yunet.device == "CUDA.0")
            #expect(yunet.bytesSource == "device", "footprint measured as NVML's used-memory delta")
        } else {
            #expect(yunet.device == "CPU")
            #expect(cuda.reason?.isEmpty == false || gpu?.unavailableReason?.isEmpty == false)
        }
    }
}
