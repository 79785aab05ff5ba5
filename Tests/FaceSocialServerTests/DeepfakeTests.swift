import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("POST /v1/deepfake")
struct DeepfakeTests {
    @Test func withoutADetectorItSaysWhatToInstall() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(
                .POST, "/v1/deepfake", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(bytes: try testImage("obama.jpg"))
            ) { res in
                #expect(res.status == .serviceUnavailable)
                #expect(errorCode(res) == "MODEL_UNAVAILABLE")
                #expect((body(res)[path: "error.message"] as? String)?.contains("service \"deepfake\"") == true)
                expectConforms("POST", "/v1/deepfake", res)
            }
        }
    }

    /// The manifest format is enough to add a detector: here a manifest entry with service
    /// "deepfake" and a classifier spec, pointing (for the test only) at the MiniFAS weights, which
    /// have the shape of such a model (a face crop in, two logits out). The route then serves it.
    @Test func aManifestEntryWithAClassifierSpecIsServed() async throws {
        let manifestPath = packageRoot.appendingPathComponent("models/manifest.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestPath)) as! [String: Any]
        var models = manifest["models"] as! [[String: Any]]
        var entry = models.first { $0["id"] as? String == "minifas" }!
        entry["id"] = "test-deepfake"
        entry["service"] = "deepfake"
        entry["priority"] = "low"
        entry["classifier"] = [
            "output": "output", "labels": ["pristine", "swapped"], "positive": "swapped", "crop_scale": 1.5,
            "mean": [0, 0, 0], "scale": [1.0 / 255, 1.0 / 255, 1.0 / 255], "activation": "softmax", "threshold": 0.5,
        ]
        models.append(entry)
        manifest["models"] = models
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("deepfake-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: temp) }
        try JSONSerialization.data(withJSONObject: manifest).write(to: temp)
        let config = try testConfig(["FACESOCIAL_MODEL_MANIFEST": temp.path])
        let registry = try FaceSocialApp.makeRegistry(config)
        try await withFaceSocial(registry: registry) { app in
            try await app.testing().test(
                .POST, "/v1/deepfake", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(bytes: try testImage("two_people.jpg"))
            ) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                expectConforms("POST", "/v1/deepfake", res)
                let faces = body(res)[path: "data.faces"] as? [[String: Any]] ?? []
                #expect(faces.count == 2)
                for face in faces {
                    let probabilities = try #require(face["probabilities"] as? [String: Double])
                    #expect(abs(probabilities.values.reduce(0, +) - 1) < 1e-3)
                    #expect(face["score"] as? Double == probabilities["swapped"])
                }
                #expect(res.headers.first(name: "X-Model-Used")?.contains("test-deepfake") == true)
            }
        }
    }
}
