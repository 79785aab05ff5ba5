import FaceKit
import ModelRuntime
import Synchronization
import Vapor

/// The per-face analyses a client can ask for.
public enum AnalysisKind: String, CaseIterable, Sendable, Codable {
    case embedding, attributes, liveness, quality, landmarks, emotion

    /// What `/v1/analyze` runs when `analyses` is not sent: everything but emotion, a weak model
    /// whose answers nobody should get without asking (docs/models.md, "Emotion").
    public static let defaults: Set<AnalysisKind> = Set(allCases).subtracting([.emotion])
}

/// Detectors a client can pick with `detector=`.
public enum DetectorKind: String, CaseIterable, Sendable {
    case yunet, retinaface

    /// The longer side of the detector's input: it never sees more pixels than this a side.
    var inputSize: Int {
        switch self {
        case .yunet: YuNet.inputSize
        case .retinaface: RetinaFace.inputSize
        }
    }
}

/// Everything computed about one face. Quality is always computed: it is cheap and every route
/// can filter on it.
public struct FaceReport: Sendable {
    public var face: DetectedFace
    public var quality: FaceQuality
    public var embedding: [Float]?
    public var age: AgeEstimate?
    public var gender: GenderEstimate?
    public var liveness: LivenessResult?
    public var mesh: DenseLandmarks?
    public var emotion: EmotionEstimate?
}

extension FaceService {
    /// Runs the chosen detector, on quarter-turned copies too as `options.rotation` says
    /// (`OrientationSearch`); `orientationTagged` is whether the upload said which way is up.
    /// `options.minQuality` is applied later, once quality is known.
    public func detect(
        _ image: RGBImage, detector: DetectorKind, options: DetectionOptions, orientationTagged: Bool
    ) async throws -> Detection {
        var timings = StageTimings()
        var model = ""  // set by the first pass, which always runs
        let faces = try await OrientationSearch.detect(
            image, options: options, orientationTagged: orientationTagged
        ) { turned in
            let found = try await detectUpright(turned, detector: detector, options: options)
            timings += found.timings
            model = found.model
            return found.faces
        }
        return Detection(faces: faces, timings: timings, model: model)
    }

    /// Decodes an upload (upright by its EXIF orientation) and finds its faces.
    public func decodeAndDetect(
        _ bytes: [UInt8], detector: DetectorKind, options: DetectionOptions
    ) async throws -> (image: RGBImage, detection: Detection) {
        let decoded = try await decode(bytes)
        let detection = try await detect(
            decoded.image, detector: detector, options: options, orientationTagged: decoded.orientationTagged)
        return (decoded.image, detection)
    }

    private func detectUpright(
        _ image: RGBImage, detector: DetectorKind, options: DetectionOptions
    ) async throws -> Detection {
        switch detector {
        case .yunet:
            return try await detect(image, options: options)
        case .retinaface:
            let session = try await registry.session(for: FaceModel.retinaface.id)
            let (faces, timings) = try await RetinaFace().detect(image, runner: session, options: options)
            return Detection(faces: faces, timings: timings, model: modelLabel(FaceModel.retinaface.id))
        }
    }

    /// Detection alone (`/v1/detect`): decodes at the smallest size the detector can use (see
    /// `ImageDecoder.decode(_:limits:minimumLongSide:)`) and returns faces in the upload's
    /// coordinates, with the upload's upright size.
    public func detectOnly(
        _ bytes: [UInt8], detector: DetectorKind, options: DetectionOptions
    ) async throws -> (detection: Detection, width: Int, height: Int) {
        let limits = self.limits
        let reduced = try await threadPool.runIfActive {
            try ImageDecoder.decode(bytes, limits: limits, minimumLongSide: detector.inputSize)
        }
        let (sx, sy) = (reduced.scaleX, reduced.scaleY)
        var scaledOptions = options
        scaledOptions.minFaceSize = options.minFaceSize / min(sx, sy)
        var detection = try await detect(
            reduced.image, detector: detector, options: scaledOptions, orientationTagged: reduced.orientationTagged)
        if sx != 1 || sy != 1 { detection.faces = detection.faces.map { $0.scaled(x: sx, y: sy) } }
        return (detection, reduced.width, reduced.height)
    }

    /// The requested analyses for each face, faces in parallel and, within a face, the models in
    /// parallel. Crops are made once per face and shared: the 112×112 aligned chip feeds both the
    /// embedder and the quality measure.
    public func analyze(
        _ image: RGBImage, faces: [DetectedFace], kinds: Set<AnalysisKind>, livenessThreshold: Float,
        recognizer: RecognitionModel = .standard
    ) async throws -> (reports: [FaceReport], models: [String], milliseconds: [String: Double]) {
        // Resolve every model first: a missing model fails the request before any work is done,
        // and each model loads once however many faces wait for it.
        var models: [String] = []
        let times = ModelTimes()
        let embedder = kinds.contains(.embedding) ? try await session(recognizer.id, &models, times) : nil
        let network = recognizer.network
        let age = kinds.contains(.attributes) ? try await session(FaceModel.age.id, &models, times) : nil
        let gender = kinds.contains(.attributes) ? try await session(FaceModel.gender.id, &models, times) : nil
        let minifas = kinds.contains(.liveness) ? try await session(FaceModel.minifas.id, &models, times) : nil
        let mesh = kinds.contains(.landmarks) ? try await session(FaceModel.faceMesh.id, &models, times) : nil
        let fer = kinds.contains(.emotion) ? try await session(FaceModel.emotion.id, &models, times) : nil

        let reports = try await withThrowingTaskGroup(of: (Int, FaceReport).self) { group in
            for (index, face) in faces.enumerated() {
                group.addTask {
                    let chip = FaceAlignment.chip(image, landmarks: face.landmarks)
                    async let embedding = embedder.asyncMap { try await network.embed(chip: chip, runner: $0) }
                    async let ageEstimate = age.asyncMap {
                        try await AgeEstimator().estimate(image, face: face, runner: $0)
                    }
                    async let genderEstimate = gender.asyncMap {
                        try await GenderClassifier().classify(image, face: face, runner: $0)
                    }
                    async let liveness = minifas.asyncMap {
                        try await MiniFAS().check(image, face: face, runner: $0, threshold: livenessThreshold)
                    }
                    async let dense = mesh.asyncMap { try await FaceMesh().landmarks(image, face: face, runner: $0) }
                    async let emotion = fer.asyncMap {
                        try await EmotionClassifier().classify(image, face: face, runner: $0)
                    }
                    let quality = FaceQualityAssessor.assess(image: image, face: face, chip: chip)
                    let report = FaceReport(
                        face: face, quality: quality, embedding: try await embedding, age: try await ageEstimate,
                        gender: try await genderEstimate, liveness: try await liveness, mesh: try await dense,
                        emotion: try await emotion)
                    return (index, report)
                }
            }
            var reports = [FaceReport?](repeating: nil, count: faces.count)
            for try await (index, report) in group { reports[index] = report }
            return reports.compactMap { $0 }
        }
        return (reports, models, times.milliseconds)
    }

    /// A model's session, timed: each run's wall time is added to `times` under its label.
    private func session(_ id: String, _ models: inout [String], _ times: ModelTimes) async throws
        -> any TensorRunner
    {
        let session = try await registry.session(for: id)
        let label = modelLabel(id)
        models.append(label)
        return TimedRunner(inner: session, label: label, times: times)
    }
}

/// Milliseconds per model label, added to from concurrent face tasks.
final class ModelTimes: Sendable {
    private let values = Mutex<[String: Double]>([:])
    var milliseconds: [String: Double] { values.withLock { $0 } }
    func add(_ label: String, _ milliseconds: Double) { values.withLock { $0[label, default: 0] += milliseconds } }
}

/// A runner that times each run of the one it wraps (the inference, queueing and batching
/// included: what the request waited for that model).
struct TimedRunner: TensorRunner {
    let inner: any TensorRunner
    let label: String
    let times: ModelTimes
    var flexibleSizeMultiple: Int? { inner.flexibleSizeMultiple }

    func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        let start = ContinuousClock.now
        defer { times.add(label, (ContinuousClock.now - start).milliseconds) }
        return try await inner.run(inputs)
    }
}

extension Optional where Wrapped: Sendable {
    /// `map` for an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
