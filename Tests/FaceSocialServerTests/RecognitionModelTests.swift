import FaceKit
import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The opt-in recognizer's licence word (models/manifest.json).
let nonCommercialOptIn = "insightface-noncommercial"

/// A model folder for the tests of the opt-in recognizer, and a registry over it: links to every
/// installed model, plus w600k_mbf installed with the opt-in from the mirror
/// (FACESOCIAL_MODEL_MIRROR, else ../shared/models) or upstream. It lives in the build folder
/// (out of git), never in the model folder `make run` serves from, so nothing non-commercial is
/// installed there by the tests.
let optInModels: Result<(registry: ModelRegistry, env: [String: String]), any Error> = Result {
    let base = try testConfig()
    let root = base.manifestURL.deletingLastPathComponent().deletingLastPathComponent()
    let folder = root.appendingPathComponent(".build/test-models-opt-in")
    let files = FileManager.default
    let store = try ModelStore(
        manifestURL: base.manifestURL, directory: folder,
        upstreamFetcher: root.appendingPathComponent("scripts/models/fetch_upstream.py"),
        acceptedLicences: [nonCommercialOptIn])
    for entry in store.manifest.models where entry.licenceOptIn == nil {
        let link = folder.appendingPathComponent(entry.file)
        try files.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? files.removeItem(at: link)
        try files.createSymbolicLink(
            at: link, withDestinationURL: base.modelDirectory.appendingPathComponent(entry.file))
    }
    let env = ProcessInfo.processInfo.environment
    let mirror =
        env["FACESOCIAL_MODEL_MIRROR"].map { URL(fileURLWithPath: $0) }
        ?? root.appendingPathComponent("../shared/models").standardizedFileURL
    try store.pull(try #require(store.manifest.entry("w600k_mbf")), mirror: mirror)
    let extra = [
        "FACESOCIAL_MODEL_DIR": folder.path, ModelStore.acceptLicencesVariable: nonCommercialOptIn,
    ]
    return (try FaceSocialApp.makeRegistry(try testConfig(extra)), extra)
}

extension GalleryScenario {
    /// A collection on w600k_mbf next to one on SFace, on a server opted into its licence: each
    /// enrols and identifies with its own recognizer, embeddings of one never reach the other, and
    /// the model is kept.
    static func collectionOnW600K(_ app: Application) async throws {
        let c = GalleryClient(app: app)
        let created = try await c.json(
            .POST, "/v1/collections", template: "/v1/collections",
            ["name": "w600k-\(UUID().uuidString.prefix(8))", "recognition_model": "w600k_mbf"], expect: .created)
        #expect(created[path: "data.recognition_model"] as? String == "w600k_mbf")
        let collection = try #require(created[path: "data.id"] as? String)
        let sfaceCollection = try await c.createCollection("sface-\(UUID().uuidString.prefix(8))")
        for (person, file) in [("obama", "obama.jpg"), ("biden", "biden.jpg"), ("kit", "kit_harington_john1.jpeg")] {
            for target in [collection, sfaceCollection] {
                let subject = try await c.createSubject(target, person)
                let enrolled = try await c.enrol(target, subject, file)
                let model = (enrolled[path: "data.faces"] as? [[String: Any]])?.first?["embedding_model"] as? String
                #expect(model?.hasPrefix(target == collection ? "w600k_mbf@" : "sface@") == true, "\(enrolled)")
            }
        }
        // The group photo: obama and biden known, the child not; with w600k_mbf's own threshold.
        let group = try await c.upload(
            "/v1/collections/\(collection)/identify", template: "/v1/collections/{collection}/identify",
            file: "obama_and_biden.jpg", expect: .ok)
        #expect(abs((group[path: "data.threshold_used"] as? Double ?? 0) - Double(Thresholds.verifyW600KMBF)) < 1e-6)
        #expect((group[path: "data.model"] as? String)?.hasPrefix("w600k_mbf@") == true)
        let faces = try await c.identify(collection, "obama_and_biden.jpg")
        #expect(Set(faces.filter { !$0.2 }.compactMap(\.0)) == ["obama", "biden"], "\(faces)")
        #expect(faces.filter(\.2).count == 1, "\(faces)")
        // Other photos of the enrolled people are found, a stranger is not.
        #expect(try await c.identify(collection, "obama2.jpg").first?.0 == "obama")
        #expect(try await c.identify(collection, "kit_harington_john2.jpeg").first?.0 == "kit")
        #expect(try await c.identify(collection, "rose_leslie_img1.jpg").first?.2 == true)

        // By embedding: a 512-d w600k_mbf embedding from /v1/embed finds obama; an SFace one is refused.
        let embedded = try await c.upload(
            "/v1/embed?model=w600k_mbf", template: "/v1/embed", file: "obama2.jpg", expect: .ok)
        #expect(embedded[path: "data.dimension"] as? Int == 512)
        let vector = try #require((embedded[path: "data.faces"] as? [[String: Any]])?.first?["embedding"] as? [Double])
        let byEmbedding = try await c.json(
            .POST, "/v1/collections/\(collection)/identify", template: "/v1/collections/{collection}/identify",
            ["embedding": vector, "model": "w600k_mbf"])
        #expect((byEmbedding[path: "data.faces"] as? [[String: Any]])?.first?[path: "matches"] != nil)
        let top = ((byEmbedding[path: "data.faces"] as? [[String: Any]])?.first?["matches"] as? [[String: Any]])?.first
        #expect(top?["external_id"] as? String == "obama", "\(byEmbedding)")
        for (payload, field) in [
            (["embedding": Array(vector.prefix(128)), "model": "w600k_mbf"] as [String: Any], "embedding"),
            (["embedding": vector, "model": "sface"], "model"),
        ] {
            let refused = try await c.json(
                .POST, "/v1/collections/\(collection)/identify", template: "/v1/collections/{collection}/identify",
                payload, expect: .badRequest)
            #expect(refused[path: "error.details.field"] as? String == field, "\(refused)")
        }
        // The SFace collection refuses the 512-d embedding: another model's embeddings never mix.
        let other = try await c.json(
            .POST, "/v1/collections/\(sfaceCollection)/identify", template: "/v1/collections/{collection}/identify",
            ["embedding": vector, "model": "w600k_mbf"], expect: .badRequest)
        #expect(other[path: "error.details.field"] as? String == "embedding")
        #expect(try await c.identify(sfaceCollection, "obama2.jpg").first?.0 == "obama")

        // Unnamed faces cluster with the collection's recognizer too.
        let unnamed = try await c.upload(
            "/v1/collections/\(collection)/faces", template: "/v1/collections/{collection}/faces", file: "obama3.jpg")
        let model = (unnamed[path: "data.faces"] as? [[String: Any]])?.first?[path: "face.embedding_model"] as? String
        #expect(model?.hasPrefix("w600k_mbf@") == true, "\(unnamed)")

        // The collection keeps its model: listed with it.
        let listed = try await c.json(
            .GET, "/v1/collections/\(collection)", template: "/v1/collections/{collection}")
        #expect(listed[path: "data.recognition_model"] as? String == "w600k_mbf")
    }
}

@Suite("Recognizer per collection and the opt-in model")
struct RecognitionModelTests {
    /// w600k_mbf's manifest entry lets it run in bf16 where the CPU computes bf16 natively and the
    /// tuner measures it faster, as SFace's does: its embeddings must stay those of float32, so the
    /// threshold set on float32 and galleries enrolled in float32 keep their meaning.
    @Test func w600kInBF16KeepsTheEmbeddingsAndTheDecisions() async throws {
        let folder = URL(fileURLWithPath: try #require(try optInModels.get().env["FACESOCIAL_MODEL_DIR"]))
        let engine = try OpenVINOEngine()
        func session(_ file: String, _ input: String, _ side: Int, _ precision: InferencePrecision) throws
            -> any InferenceSession
        {
            try engine.load(
                modelAt: folder.appendingPathComponent(file).path,
                options: SessionOptions(precision: precision, inputShapes: [input: [1, 3, side, side]]))
        }
        let recognizer = FaceRecognizer.w600kMBF
        let detector = try session("detection/yunet_2023mar.onnx", YuNet.inputName, YuNet.inputSize, .f32)
        let f32 = try session("recognition/w600k_mbf.onnx", recognizer.inputName, FaceRecognizer.inputSize, .f32)
        let bf16 = try session("recognition/w600k_mbf.onnx", recognizer.inputName, FaceRecognizer.inputSize, .bf16)
        let identities = [
            ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg", "obama-1080p.jpg"],
            ["biden.jpg", "biden_biden2.jpg"], ["kit_harington_john1.jpeg", "kit_harington_john2.jpeg"],
            ["rose_leslie_img1.jpg", "rose_leslie_img2.jpg"],
        ]
        var embeddings: [(identity: Int, f32: [Float], bf16: [Float])] = []
        var report = "w600k_mbf bf16 against float32 (same YuNet face):\n"
        for (identity, photos) in identities.enumerated() {
            for name in photos {
                let image = try ImageDecoder.decode(try testImage(name))
                let faces = try await YuNet().detect(image, runner: detector, options: DetectionOptions()).faces
                let face = try #require(faces.max { $0.box.area < $1.box.area }, "\(name)")
                let pair = (
                    identity, try await recognizer.embed(image, face: face, runner: f32),
                    try await recognizer.embed(image, face: face, runner: bf16)
                )
                let agreement = EmbeddingMath.cosine(pair.1, pair.2)
                report += String(format: "  %@ cosine(f32, bf16) %.4f\n", name as NSString, agreement)
                #expect(agreement > 0.999, "\(name): \(agreement)")
                embeddings.append(pair)
            }
        }
        var worstShift: Float = 0
        for i in embeddings.indices {
            for j in (i + 1)..<embeddings.count {
                let (a, b) = (embeddings[i], embeddings[j])
                let before = EmbeddingMath.cosine(a.f32, b.f32)
                let after = EmbeddingMath.cosine(a.bf16, b.bf16)
                worstShift = max(worstShift, abs(after - before))
                let threshold = Thresholds.verifyW600KMBF
                #expect((before >= threshold) == (after >= threshold), "pair \(i), \(j): \(before) → \(after)")
                if a.identity != b.identity { #expect(after < threshold, "pair \(i), \(j): \(after)") }
            }
        }
        report += String(format: "  largest change of a pair's similarity: %.4f", worstShift)
        print(report)
        #expect(worstShift < 0.01)
    }

    /// Without the opt-in nothing installs or loads it, and every route that names it says why.
    @Test func theNonCommercialModelNeedsTheOptIn() async throws {
        let config = try testConfig()
        let store = try ModelStore(manifestURL: config.manifestURL, directory: config.modelDirectory)
        let entry = try #require(store.manifest.entry("w600k_mbf"))
        #expect(entry.licence.contains("non-commercial"))
        #expect(entry.licenceOptIn == nonCommercialOptIn)
        #expect(!store.isEnabled(entry))
        #expect(throws: ModelStoreError.self) { try store.pull(entry, mirror: nil) }
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let models = try await c.json(.GET, "/system/models", template: "/system/models")
            let info = (models[path: "data.models"] as? [[String: Any]])?.first { $0["id"] as? String == "w600k_mbf" }
            #expect(info?["enabled"] as? Bool == false, "\(String(describing: info))")
            #expect(info?["licence_opt_in"] as? String == nonCommercialOptIn)
            #expect((info?["licence"] as? String)?.contains("non-commercial") == true)
            #expect(info?["state"] as? String == "unloaded")
            // Named by a request: 409 with the reason, the model never loaded.
            var form = Multipart()
            form.file("image1", try testImage("obama.jpg"))
            form.file("image2", try testImage("obama2.jpg"))
            var headers = form.headers
            headers.add(contentsOf: try await c.auth())
            try await app.testing().test(.POST, "/v1/verify?model=w600k_mbf", headers: headers, body: form.body()) {
                res in
                #expect(res.status == .conflict)
                #expect(body(res)[path: "error.code"] as? String == "MODEL_LICENCE_NOT_ACCEPTED")
                #expect(body(res)[path: "error.details.field"] as? String == "model")
            }
            let refused = try await c.json(
                .POST, "/v1/collections", template: "/v1/collections",
                ["name": "refused", "recognition_model": "w600k_mbf"], expect: .conflict)
            #expect(refused[path: "error.code"] as? String == "MODEL_LICENCE_NOT_ACCEPTED")
            #expect(refused[path: "error.details.field"] as? String == "recognition_model")
            let unknown = try await c.json(
                .POST, "/v1/collections", template: "/v1/collections",
                ["name": "unknown", "recognition_model": "facenet"], expect: .badRequest)
            #expect(unknown[path: "error.details.field"] as? String == "recognition_model")
            let loaded = try await c.json(
                .POST, "/system/models/w600k_mbf/load", template: "/system/models/{id}/load", expect: .conflict)
            #expect(loaded[path: "error.code"] as? String == "MODEL_LICENCE_NOT_ACCEPTED")
            let after = try await c.json(.GET, "/system/models", template: "/system/models")
            let state = (after[path: "data.models"] as? [[String: Any]])?.first { $0["id"] as? String == "w600k_mbf" }
            #expect(state?["state"] as? String == "unloaded")
        }
    }

    /// Opted in: w600k_mbf verifies the test identities at its own measured threshold, and
    /// answers 512-d embeddings.
    @Test func w600kVerifiesWithItsOwnThreshold() async throws {
        let optIn = try optInModels.get()
        try await withFaceSocial(optIn.env, registry: optIn.registry) { app in
            let c = GalleryClient(app: app)
            func verify(_ a: String, _ b: String) async throws -> [String: Any] {
                var form = Multipart()
                form.file("image1", try testImage(a))
                form.file("image2", try testImage(b))
                var headers = form.headers
                headers.add(contentsOf: try await c.auth())
                var result: [String: Any] = [:]
                try await app.testing().test(
                    .POST, "/v1/verify?model=w600k_mbf", headers: headers, body: form.body()
                ) { res in
                    #expect(res.status == .ok, "\(a)/\(b): \(res.body.string.prefix(300))")
                    expectConforms("POST", "/v1/verify", res)
                    result = body(res)
                }
                return result
            }
            for (a, b) in [
                ("obama.jpg", "obama2.jpg"), ("obama.jpg", "obama3.jpg"), ("biden.jpg", "biden_biden2.jpg"),
                ("kit_harington_john1.jpeg", "kit_harington_john2.jpeg"),
                ("rose_leslie_img1.jpg", "rose_leslie_img2.jpg"),
            ] {
                let same = try await verify(a, b)
                #expect(same[path: "data.is_same_person"] as? Bool == true, "\(a)/\(b): \(same)")
                #expect((same[path: "data.model"] as? String)?.hasPrefix("w600k_mbf@") == true)
                #expect(
                    abs((same[path: "data.threshold_used"] as? Double ?? 0) - Double(Thresholds.verifyW600KMBF)) < 1e-6)
            }
            for (a, b) in [
                ("obama2.jpg", "biden.jpg"), ("kit_harington_john2.jpeg", "rose_leslie_img2.jpg"),
                ("obama.jpg", "rose_leslie_img1.jpg"), ("biden_biden2.jpg", "kit_harington_john1.jpeg"),
            ] {
                let different = try await verify(a, b)
                #expect(different[path: "data.is_same_person"] as? Bool == false, "\(a)/\(b): \(different)")
            }
            let models = try await c.json(.GET, "/system/models", template: "/system/models")
            let info = (models[path: "data.models"] as? [[String: Any]])?.first { $0["id"] as? String == "w600k_mbf" }
            #expect(info?["enabled"] as? Bool == true)
            #expect(info?["state"] as? String == "loaded")
        }
    }

    @Test func collectionOnW600KOnSQLite() async throws {
        let optIn = try optInModels.get()
        try await withFaceSocial(optIn.env, registry: optIn.registry) { app in
            try await GalleryScenario.collectionOnW600K(app)
        }
    }

    // On PostgreSQL: PostgresGalleryTests.collectionOnW600K (that suite runs its tests one at a
    // time on the shared database, migrations included).
}
