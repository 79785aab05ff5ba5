import FaceKit
import Foundation
import ModelRuntime
import Testing

@testable import FaceSocialServer

/// The manifest held to the pipelines (`FaceModel.mismatches`, run at start): the shipped manifest
/// fits; each way an edited one can stop fitting is named, model and field. Milliseconds, no engine.
@Suite struct FaceModelsTests {
    static func manifest() throws -> ModelManifest {
        try ModelManifest.load(from: packageRoot.appendingPathComponent("models/manifest.json"))
    }

    static func edited(_ id: String, _ change: (inout ModelManifest.Entry) -> Void) throws -> ModelManifest {
        var manifest = try manifest()
        let index = try #require(manifest.models.firstIndex { $0.id == id })
        change(&manifest.models[index])
        return manifest
    }

    @Test func theShippedManifestFitsEveryPipeline() throws {
        let manifest = try Self.manifest()
        #expect(FaceModel.mismatches(in: manifest) == [])
        #expect(Set(manifest.models.map(\.id)) == Set(FaceModel.all.map(\.id)))
        // Batching is a manifest fact: the detectors take one letterbox, the per-face models batches.
        #expect(
            manifest.models.filter(\.batches).map(\.id).sorted() == [
                "age", "emotion", "face-mesh", "gender", "minifas", "sface", "w600k_mbf",
            ])
    }

    @Test func eachMismatchNamesTheModelAndWhatDiffers() throws {
        let cases: [(ModelManifest, String)] = [
            (
                try Self.edited("yunet") { $0.service = .recognition },
                "model yunet: service is recognition, but the detection pipeline runs it"
            ),
            (
                try Self.edited("sface") { $0.input.name = "input" },
                "model sface: input is named input, the pipeline feeds data"
            ),
            (
                try Self.edited("age") { $0.input.shape = [1, 3, 96, 96] },
                "model age: input is [1, 3, 96, 96] NCHW, the pipeline feeds [1, 3, 64, 64] NCHW"
            ),
            (
                try Self.edited("minifas") { $0.input.layout = "NHWC" },
                "model minifas: input is [1, 3, 128, 128] NHWC, the pipeline feeds [1, 3, 128, 128] NCHW"
            ),
            (
                try Self.edited("sface") { $0.input.color = "BGR" },
                "model sface: input colour is BGR, the pipeline feeds RGB"
            ),
            (
                try Self.edited("minifas") { $0.input.range = "0..255" },
                "model minifas: input range is 0..255, the pipeline feeds 0..1"
            ),
            (
                try Self.edited("retinaface") { $0.input.range = "0..255" },
                "model retinaface: input range is 0..255, the pipeline feeds 0..255 minus (104,117,123)"
            ),
            (
                try Self.edited("gender") { $0.service = .deepfake },
                "model gender: a deepfake model needs a classifier spec"
            ),
        ]
        for (manifest, problem) in cases {
            #expect(FaceModel.mismatches(in: manifest).contains(problem), "\(FaceModel.mismatches(in: manifest))")
        }
        // A model the manifest leaves out is no mismatch: the routes needing it answer 503.
        var without = try Self.manifest()
        without.models.removeAll { $0.id == "retinaface" }
        #expect(FaceModel.mismatches(in: without) == [])
    }

    /// Each way the manifest writes a range comes from the normalisation a pipeline applies.
    @Test func rangeTextsComeFromTheNormalisation() {
        #expect(Normalization.identity.rangeText == "0..255")
        #expect(Normalization.unitRange.rangeText == "0..1")
        #expect(Normalization(mean: (104, 117, 123)).rangeText == "0..255 minus (104,117,123)")
        #expect(AgeEstimator.normalization.rangeText == "(x - (122.782,117.001,104.298)) / 256")
        #expect(EmotionClassifier.normalization.rangeText == "-1..1")
        #expect(Normalization(mean: (1, 2, 3), scale: (0.5, 0.25, 1)).rangeText == "(x - (1,2,3)) * (0.5,0.25,1)")
    }

    @Test func aMismatchStopsTheServerAtStartAndAnUnknownRoleAtRead() throws {
        let url = packageRoot.appendingPathComponent("models/manifest.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var models = try #require(json["models"] as? [[String: Any]])
        models[0]["input"] = [
            "name": "images", "shape": [1, 3, 640, 640], "layout": "NCHW", "color": "BGR", "range": "0..255",
        ]
        json["models"] = models
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("manifest-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: temp) }
        try JSONSerialization.data(withJSONObject: json).write(to: temp)
        let config = try testConfig(["FACESOCIAL_MODEL_MANIFEST": temp.path])
        let error = #expect(throws: ConfigError.self) { try FaceSocialApp.makeRegistry(config) }
        #expect(
            "\(error.map { "\($0)" } ?? "")".contains("model yunet: input is named images, the pipeline feeds input"))

        models[0]["service"] = "segmentation"
        json["models"] = models
        try JSONSerialization.data(withJSONObject: json).write(to: temp)
        #expect(throws: ModelStoreError.self) { try ModelManifest.load(from: temp) }
    }
}
