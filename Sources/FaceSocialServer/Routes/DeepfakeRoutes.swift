import FaceKit
import ModelRuntime
import Vapor

/// `POST /v1/deepfake`: served by whichever manifest model has service "deepfake" and a classifier
/// spec. None ships (no face-swap detector weights are available to this project), so until an
/// operator adds one the route says so with 503 `MODEL_UNAVAILABLE`; it never makes up a score.
struct DeepfakeRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig

    func boot(routes: any RoutesBuilder) throws {
        routes.on(.POST, "v1", "deepfake", body: .stream, use: deepfake)
    }

    struct FaceResult: Content {
        let bbox: BoxDTO
        let score: Float
        let isFake: Bool
        let probabilities: [String: Float]
    }

    struct Response: Content {
        let faces: [FaceResult]
        let thresholdUsed: Float
        let model: String
    }

    @Sendable
    func deepfake(_ req: Request) async throws -> Envelope<Response> {
        let installed = faces.registry.store.manifest.models.first(where: { $0.service == .deepfake })
        // The request is read and checked first: a bad parameter is a 400 whether or not a model is installed.
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.deepfake)
        let options = try input.detectionOptions(maxFacesLimit: config.maxFaces)
        let detector = try input.detector()
        let requestedThreshold = try input.numberIfSent(.deepfakeThreshold)
        guard let entry = installed, let spec = entry.classifier else {
            throw APIError.modelUnavailable(
                "no deepfake detector is installed: add a model with service \"deepfake\" and a classifier spec to "
                    + "the manifest (docs/models.md, \"Adding a deepfake detector\"), then run `facesocial models pull`",
                model: "deepfake")
        }
        let threshold = requestedThreshold ?? spec.threshold
        let (image, detection) = try await faces.decodeAndDetect(
            try input.image("image"), detector: detector, options: options)
        req.context.used(detection.model, milliseconds: detection.timings.totalMs)
        let session = try await faces.registry.session(for: entry.id)
        req.context.used(faces.modelLabel(entry.id))
        let classifier = try Self.classifier(entry, spec)
        var results: [FaceResult] = []
        for face in detection.faces {
            let probabilities = try await classifier.classify(image, face: face, runner: session)
            let score = probabilities[spec.positive] ?? 0
            results.append(
                FaceResult(
                    bbox: BoxDTO(face.box), score: (score * 10000).rounded() / 10000, isFake: score >= threshold,
                    probabilities: probabilities.mapValues { ($0 * 10000).rounded() / 10000 }))
        }
        return req.envelope(Response(faces: results, thresholdUsed: threshold, model: faces.modelLabel(entry.id)))
    }

    static func classifier(_ entry: ModelManifest.Entry, _ spec: ModelManifest.ClassifierSpec) throws
        -> FaceCropClassifier
    {
        guard entry.input.shape.count == 4, entry.input.shape[2] == entry.input.shape[3], spec.mean.count == 3,
            spec.scale.count == 3, spec.labels.contains(spec.positive),
            let activation = FaceCropClassifier.Activation(rawValue: spec.activation)
        else {
            throw APIError.modelUnavailable(
                "the manifest's classifier spec for \(entry.id) is invalid", model: entry.id)
        }
        return FaceCropClassifier(
            inputName: entry.input.name, outputName: spec.output, inputSize: entry.input.shape[2],
            channelOrder: entry.input.color.uppercased() == "BGR" ? .bgr : .rgb,
            normalization: Normalization(
                mean: (spec.mean[0], spec.mean[1], spec.mean[2]), scale: (spec.scale[0], spec.scale[1], spec.scale[2])),
            cropScale: spec.cropScale, labels: spec.labels, activation: activation)
    }
}
