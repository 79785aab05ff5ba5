/// Something that runs a network: named input tensors in, named output tensors out. The face
/// pipelines here call it between their pre- and postprocessing; ModelRuntime's sessions provide it.
public protocol TensorRunner: Sendable {
    func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor]
    /// Set when the runner also takes an image input of any height and width in steps of this
    /// many pixels (up to the declared size); nil when only the declared shape runs.
    var flexibleSizeMultiple: Int? { get }
}

extension TensorRunner {
    public var flexibleSizeMultiple: Int? { nil }
}

/// A runner's refusal of the inputs it was given (a name or shape it does not take), as opposed
/// to a failure while running them.
public protocol RunnerInputError: Error, Sendable {}

/// Milliseconds spent in each stage of one pipeline run.
public struct StageTimings: Sendable, Equatable, Codable {
    public var preprocessMs: Double = 0
    public var inferenceMs: Double = 0
    public var postprocessMs: Double = 0

    public init() {}

    /// The three stages together.
    public var totalMs: Double { preprocessMs + inferenceMs + postprocessMs }

    /// Adds another run's stages (several detector passes over one image).
    public static func += (total: inout StageTimings, run: StageTimings) {
        total.preprocessMs += run.preprocessMs
        total.inferenceMs += run.inferenceMs
        total.postprocessMs += run.postprocessMs
    }
}

/// Measures `body` in milliseconds on the monotonic clock.
@inlinable
public func measure<T>(_ milliseconds: inout Double, _ body: () throws -> T) rethrows -> T {
    let start = ContinuousClock.now
    defer { milliseconds += (ContinuousClock.now - start).milliseconds }
    return try body()
}

@inlinable
public func measure<T>(_ milliseconds: inout Double, _ body: () async throws -> T) async rethrows -> T {
    let start = ContinuousClock.now
    defer { milliseconds += (ContinuousClock.now - start).milliseconds }
    return try await body()
}

extension Duration {
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

/// A one-pass face detector: a letterbox in, the network, then decoding and NMS. YuNet and
/// RetinaFace differ only in those two steps; `detect` runs and times the three stages for both.
public protocol LetterboxFaceDetector: Sendable {
    static var inputName: String { get }
    func preprocess(_ image: RGBImage) -> (Tensor, LetterboxGeometry)
    /// The network's input for a runner that takes sizes in steps of `sizeMultiple` (nil: the
    /// declared square).
    func preprocess(_ image: RGBImage, sizeMultiple: Int?) -> (Tensor, LetterboxGeometry)
    func postprocess(
        _ outputs: [String: Tensor], geometry: LetterboxGeometry, imageWidth: Int, imageHeight: Int,
        options: DetectionOptions
    ) throws -> [DetectedFace]
}

extension LetterboxFaceDetector {
    public func preprocess(_ image: RGBImage, sizeMultiple: Int?) -> (Tensor, LetterboxGeometry) {
        preprocess(image)
    }

    /// The whole detector: letterbox, network, decode and NMS.
    public func detect(
        _ image: RGBImage, runner: any TensorRunner, options: DetectionOptions
    ) async throws -> (faces: [DetectedFace], timings: StageTimings) {
        var timings = StageTimings()
        var (tensor, geometry) = measure(&timings.preprocessMs) {
            preprocess(image, sizeMultiple: runner.flexibleSizeMultiple)
        }
        let outputs: [String: Tensor]
        do {
            outputs = try await measure(&timings.inferenceMs) { try await runner.run([Self.inputName: tensor]) }
        } catch is any RunnerInputError where runner.flexibleSizeMultiple != nil {
            // The model moved to an engine that runs only the declared shape since the runner
            // was handed out: the square letterbox always runs.
            (tensor, geometry) = measure(&timings.preprocessMs) { preprocess(image) }
            outputs = try await measure(&timings.inferenceMs) { try await runner.run([Self.inputName: tensor]) }
        }
        let faces = try measure(&timings.postprocessMs) {
            try postprocess(
                outputs, geometry: geometry, imageWidth: image.width, imageHeight: image.height, options: options)
        }
        return (faces, timings)
    }
}

extension YuNet: LetterboxFaceDetector {}
extension RetinaFace: LetterboxFaceDetector {}
