import FaceKit
import Vapor

/// `POST /v1/detect`: every face in one image with its box, score and five landmarks.
struct DetectRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig

    func boot(routes: any RoutesBuilder) throws {
        routes.on(.POST, "v1", "detect", body: .stream, use: detect)
    }

    @Sendable
    func detect(_ req: Request) async throws -> Envelope<DetectResponse> {
        let input = try await req.imageRequest(maxBytes: config.imageLimits.maxBytes)
        let options = try input.detectionOptions(maxFacesLimit: config.maxFaces)
        let detector = try input.detector()
        let (image, _) = try await faces.decode(try input.image("image"))
        let detection = try await faces.detect(image, detector: detector, options: options)
        req.context.used(detection.model)
        return req.envelope(
            DetectResponse(
                faces: detection.faces.map(DetectedFaceDTO.init), faceCount: detection.faces.count,
                image: ImageSizeDTO(width: image.width, height: image.height)))
    }
}
