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
}
