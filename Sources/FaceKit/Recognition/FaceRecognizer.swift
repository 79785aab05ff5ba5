/// A recognition network: an L2-normalised embedding from a 112×112 chip aligned onto the
/// standard five-point template (`FaceAlignment`). This type holds each network's pre- and
/// postprocessing; running it is the engine's job. Embeddings of two recognizers are never
/// comparable, and neither are their thresholds.
public struct FaceRecognizer: Sendable, Equatable {
    /// For messages: the network's name.
    public let name: String
    public let inputName: String
    public let outputName: String
    public let dimension: Int
    /// The channel order the network was trained on (the manifest's `input.color`).
    public let channelOrder: ChannelOrder
    /// The manifest's `input.range`.
    public let normalization: Normalization
    public static let inputSize = FaceAlignment.templateSize

    /// SFace (OpenCV model zoo, 2021dec): 128-d from raw 0…255 RGB values (no mean, no scale).
    public static let sface = FaceRecognizer(
        name: "SFace", inputName: "data", outputName: "fc1", dimension: 128, channelOrder: .rgb,
        normalization: .identity)
    /// InsightFace's ArcFace MobileFaceNet trained on WebFace600K (buffalo_s): 512-d from RGB
    /// mapped onto −1…1, (x − 127.5) / 127.5. Its licence allows non-commercial research only.
    public static let w600kMBF = FaceRecognizer(
        name: "w600k_mbf", inputName: "input.1", outputName: "516", dimension: 512, channelOrder: .rgb,
        normalization: Normalization(mean: (127.5, 127.5, 127.5), scale: (1 / 127.5, 1 / 127.5, 1 / 127.5)))

    public func preprocess(chip: RGBImage) -> Tensor {
        precondition(chip.width == Self.inputSize && chip.height == Self.inputSize, "\(name) needs a 112×112 chip")
        return Preprocessing.planar(chip, order: channelOrder, normalization: normalization)
    }

    /// The output is unnormalised; L2-normalising it makes cosine similarity a plain dot product
    /// and makes stored embeddings comparable whatever their source.
    public func postprocess(_ outputs: [String: Tensor]) throws -> [Float] {
        guard let output = outputs[outputName] else { throw DetectorError.missingOutput("\(name) \(outputName)") }
        guard output.count == dimension else {
            throw DetectorError.unexpectedShape("\(name) \(outputName) \(output.shape)")
        }
        return EmbeddingMath.normalized(output.data)
    }

    /// Embeds an already aligned 112×112 chip, so a caller that also needs the chip (quality,
    /// liveness) aligns only once.
    public func embed(chip: RGBImage, runner: any TensorRunner) async throws -> [Float] {
        let outputs = try await runner.run([inputName: preprocess(chip: chip)])
        return try postprocess(outputs)
    }

    /// Aligns the face by its five landmarks and embeds it.
    public func embed(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws -> [Float] {
        try await embed(chip: FaceAlignment.chip(image, landmarks: face.landmarks), runner: runner)
    }
}

/// Vector helpers for comparing embeddings.
public enum EmbeddingMath {
    /// Cosine similarity in −1…1; 0 when either vector is zero or the lengths differ.
    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot: Float = 0
        var na: Float = 0
        var nb: Float = 0
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for i in 0..<a.count {
                    dot += a[i] * b[i]
                    na += a[i] * a[i]
                    nb += b[i] * b[i]
                }
            }
        }
        let denominator = (na * nb).squareRoot()
        return denominator > 0 ? min(max(dot / denominator, -1), 1) : 0
    }

    /// The vector scaled to unit L2 length (a zero vector is returned unchanged).
    public static func normalized(_ v: [Float]) -> [Float] {
        let norm = v.withUnsafeBufferPointer { p in p.reduce(Float(0)) { $0 + $1 * $1 } }.squareRoot()
        guard norm > 0, norm.isFinite else { return v }
        return v.map { $0 / norm }
    }
}
