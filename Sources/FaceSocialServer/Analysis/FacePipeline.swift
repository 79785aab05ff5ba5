import FaceKit
import Foundation

/// The parameters every face use case shares; the routes parse them
/// (`ImageRequest.faceParameters`).
struct FaceParameters: Sendable {
    var detector: DetectorKind
    var detection: DetectionOptions
    var minQuality: Float
    var livenessThreshold: Float
    /// The network that embeds faces (a collection's, or the call's `model`).
    var recognizer: RecognitionModel = .standard
}

/// Decode, detect, analyse, filter by quality: the one path every face use case takes (the
/// analysis routes, and the gallery's enrolment and identification).
struct FacePipeline: Sendable {
    let faces: FaceService

    func run(
        _ bytes: [UInt8], _ p: FaceParameters, kinds: Set<AnalysisKind>, context: RequestContext
    ) async throws -> (RGBImage, [FaceReport]) {
        let (image, detection) = try await faces.decodeAndDetect(bytes, detector: p.detector, options: p.detection)
        context.used(detection.model, milliseconds: detection.timings.totalMs)
        let (reports, models, milliseconds) = try await faces.analyze(
            image, faces: detection.faces, kinds: kinds, livenessThreshold: p.livenessThreshold,
            recognizer: p.recognizer)
        for model in models { context.used(model, milliseconds: milliseconds[model] ?? 0) }
        return (image, reports.filter { $0.quality.score >= p.minQuality })
    }
}
