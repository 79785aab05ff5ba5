import Foundation

/// The outcome of a passive liveness check on one face.
public struct LivenessResult: Sendable, Codable, Equatable {
    /// Whether `score` reached `threshold`.
    public var isReal: Bool
    /// The real − spoof logit margin: positive leans real. Thresholds apply to this value.
    public var score: Float
    /// Softmax P(real) over the two logits (the logistic of `score`), for display.
    public var probability: Float
    /// The margin this result was judged against.
    public var threshold: Float

    public init(isReal: Bool, score: Float, probability: Float, threshold: Float) {
        self.isReal = isReal
        self.score = score
        self.probability = probability
        self.threshold = threshold
    }
}

/// MiniFAS (MiniFASNetV2 from suriAI/face-antispoof-onnx, trained on CelebA-Spoof): a passive
/// anti-spoofing classifier on a 128×128 crop with context around the face.
public struct MiniFAS: Sendable {
    public static let inputName = "input"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .rgb
    public static let outputName = "output"
    public static let inputSize = 128
    /// Values 0…1 (the manifest's `input.range`).
    public static let normalization = Normalization.unitRange
    /// The crop is a square of side max(w, h) × this, centred on the face box (the authors' crop).
    public static let cropExpansion: Float = 1.5
    /// The default real − spoof margin. Measured in float32 with YuNet boxes (score 0.6) on every
    /// face of the real test photos (DetectionLivenessMeshTests prints the table): the lowest real
    /// margin was +2.27 (Biden in biden_biden2.jpg; then +2.53 kit_harington_john1), typical +4 to
    /// +10; the two painting false positives in biden_biden2.jpg scored −4.74 and −0.72. 1.0 sits
    /// near the middle of that gap, leaning slightly towards refusing spoofs (P(real) ≥ 0.73), and
    /// leaves room for run-to-run shifts (the model README measured +1.9 for kit_harington_john1
    /// with OpenVINO's default precision, +2.53 here in float32).
    public static let defaultThreshold: Float = 1

    public init() {}

    /// The crop the network was trained on: a square of side max(w, h) × 1.5 around the box
    /// centre, parts outside the image filled by reflection (black bars or a clipped, stretched
    /// crop cost several points of margin and flip real faces to spoof), area-resized to 128×128.
    public func crop(_ image: RGBImage, box: Box) -> RGBImage {
        let side = max(box.width, box.height) * Self.cropExpansion
        let centre = box.center
        // Integer pixel grid like the reference (int() of the corner, int() of the side).
        let length = max(1, Int(side))
        let x = Int((centre.x - side / 2).rounded(.down))
        let y = Int((centre.y - side / 2).rounded(.down))
        return image.cropped(x: x, y: y, width: length, height: length, border: .reflect)
            .resizedArea(width: Self.inputSize, height: Self.inputSize)
    }

    /// RGB planes scaled to 0…1.
    public func preprocess(crop: RGBImage) -> Tensor {
        precondition(crop.width == Self.inputSize && crop.height == Self.inputSize, "MiniFAS needs a 128×128 crop")
        return Preprocessing.planar(
            crop, order: Self.channelOrder, normalization: Self.normalization)
    }

    /// One result per batch row from the (real, spoof) logits.
    public func postprocess(_ outputs: [String: Tensor], threshold: Float) throws -> [LivenessResult] {
        guard let logits = outputs[Self.outputName] else {
            throw DetectorError.missingOutput("MiniFAS \(Self.outputName)")
        }
        guard logits.count > 0, logits.count % 2 == 0 else {
            throw DetectorError.unexpectedShape("MiniFAS \(Self.outputName) \(logits.shape)")
        }
        return (0..<(logits.count / 2)).map { row in
            Self.judge(real: logits.data[2 * row], spoof: logits.data[2 * row + 1], threshold: threshold)
        }
    }

    /// The margin and its probability; two-class softmax P(real) = 1 / (1 + e^−margin).
    public static func judge(real: Float, spoof: Float, threshold: Float) -> LivenessResult {
        let margin = real - spoof
        let probability = 1 / (1 + exp(-margin))
        return LivenessResult(
            isReal: margin >= threshold, score: margin, probability: probability, threshold: threshold)
    }

    public func check(crop: RGBImage, runner: any TensorRunner, threshold: Float = defaultThreshold) async throws
        -> LivenessResult
    {
        let outputs = try await runner.run([Self.inputName: preprocess(crop: crop)])
        guard let first = try postprocess(outputs, threshold: threshold).first else {
            throw DetectorError.unexpectedShape("MiniFAS: empty output")
        }
        return first
    }

    public func check(
        _ image: RGBImage, face: DetectedFace, runner: any TensorRunner, threshold: Float = defaultThreshold
    ) async throws -> LivenessResult {
        try await check(crop: crop(image, box: face.box), runner: runner, threshold: threshold)
    }
}
