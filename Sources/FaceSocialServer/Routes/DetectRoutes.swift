import FaceKit
import Vapor

/// `POST /v1/detect`: every face in one image with its box, score and five landmarks.
struct DetectRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig
    var cache: ResultCache? = nil

    func boot(routes: any RoutesBuilder) throws {
        routes.on(.POST, "v1", "detect", body: .stream, use: detect)
    }

    @Sendable
    func detect(_ req: Request) async throws -> Envelope<DetectResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.detect)
        let options = try input.detectionOptions(maxFacesLimit: config.maxFaces)
        let detector = try input.detector()
        let bytes = try input.image("image")
        let key = cache?.requestKey(
            route: "detect", image: bytes, models: faces.modelFingerprint,
            parameters: ["detector": detector.rawValue, "options": "\(options)"])
        if let key,
            let cached = await cache?.lookup(key, route: "detect", as: DetectResponse.self, context: req.context)
        {
            return req.envelope(cached)
        }
        let (detection, width, height) = try await faces.detectOnly(bytes, detector: detector, options: options)
        req.context.used(detection.model, milliseconds: detection.timings.totalMs)
        let result = DetectResponse(
            faces: detection.faces.map(DetectedFaceDTO.init), faceCount: detection.faces.count,
            image: ImageSizeDTO(width: width, height: height))
        if let key { await cache?.store(key, result, context: req.context) }
        return req.envelope(result)
    }
}
