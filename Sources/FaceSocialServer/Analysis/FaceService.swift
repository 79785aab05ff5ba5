import FaceKit
import Foundation
import ModelRuntime
import Vapor

/// The face pipelines behind the routes: decodes images off the event loop and runs the models
/// the registry provides.
public struct FaceService: Sendable {
    public let registry: ModelRegistry
    public let limits: ImageLimits
    let threadPool: NIOThreadPool
    let yunet = YuNet()

    public static let detectorModel = FaceModel.yunet.id

    public init(registry: ModelRegistry, limits: ImageLimits, threadPool: NIOThreadPool) {
        self.registry = registry
        self.limits = limits
        self.threadPool = threadPool
    }

    /// Decodes image bytes on the blocking-work pool (decoding a 40 MP JPEG takes a while), with
    /// whether the file said which way is up (for `OrientationSearch`).
    public func decode(_ bytes: [UInt8]) async throws -> (image: RGBImage, orientationTagged: Bool) {
        let limits = self.limits
        return try await threadPool.runIfActive {
            let (image, info) = try ImageDecoder.decodeProbed(bytes, limits: limits)
            return (image, info.orientationTagged)
        }
    }

    public struct Detection: Sendable {
        public var faces: [DetectedFace]
        public var timings: StageTimings
        public var model: String
    }

    public func detect(_ image: RGBImage, options: DetectionOptions) async throws -> Detection {
        let session = try await registry.session(for: Self.detectorModel)
        let (faces, timings) = try await yunet.detect(image, runner: session, options: options)
        return Detection(faces: faces, timings: timings, model: modelLabel(Self.detectorModel))
    }

    /// `id@version`, as reported in `meta.models` and `X-Model-Used`.
    public func modelLabel(_ id: String) -> String {
        registry.store.manifest.entry(id).map { "\($0.id)@\($0.version)" } ?? id
    }

    /// A recognizer a request names (`field`): 400 when unknown, 409 `MODEL_LICENCE_NOT_ACCEPTED`
    /// when its licence needs an opt-in this server has not been given. A model the manifest lacks
    /// is left to the load (503 `MODEL_UNAVAILABLE`).
    func recognizer(named id: String, field: String) throws -> RecognitionModel {
        guard let model = RecognitionModel.named(id) else {
            throw APIError.validation(
                "\(field) must be one of \(RecognitionModel.all.map(\.id).joined(separator: ", "))", field: field)
        }
        if let entry = registry.store.manifest.entry(id), !registry.store.isEnabled(entry) {
            throw APIError.licenceNotAccepted(
                model: id, optIn: entry.licenceOptIn ?? "",
                message:
                    "\(id) is under a restricted licence (\(entry.licence)); the operator must set "
                    + "\(ModelStore.acceptLicencesVariable)=\(entry.licenceOptIn ?? "") to use it",
                field: field)
        }
        return model
    }
}
