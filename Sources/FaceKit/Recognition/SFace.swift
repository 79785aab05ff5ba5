/// SFace (OpenCV model zoo, 2021dec): a 128-d face embedding from a 112×112 chip aligned onto the
/// standard five-point template (`FaceAlignment`). This type holds the pre- and postprocessing;
/// running the network is the engine's job.
public struct SFace: Sendable {
    public static let inputName = "data"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .rgb
    public static let outputName = "fc1"
    public static let inputSize = FaceAlignment.templateSize
    public static let dimension = 128
    /// Raw 0…255 values (the manifest's `input.range`).
    public static let normalization = Normalization.identity

    public init() {}

    /// The network sees the chip as RGB planes with raw 0…255 values (no mean, no scale).
    public func preprocess(chip: RGBImage) -> Tensor {
        precondition(chip.width == Self.inputSize && chip.height == Self.inputSize, "SFace needs a 112×112 chip")
        return Preprocessing.planar(chip, order: Self.channelOrder, normalization: Self.normalization)
    }

    /// `fc1` is unnormalised; L2-normalising it makes cosine similarity a plain dot product and
    /// makes stored embeddings comparable whatever their source.
    public func postprocess(_ outputs: [String: Tensor]) throws -> [Float] {
        guard let fc1 = outputs[Self.outputName] else { throw DetectorError.missingOutput("SFace \(Self.outputName)") }
        guard fc1.count == Self.dimension else {
            throw DetectorError.unexpectedShape("SFace \(Self.outputName) \(fc1.shape)")
        }
        return EmbeddingMath.normalized(fc1.data)
    }

    /// Embeds an already aligned 112×112 chip, so a caller that also needs the chip (quality,
    /// liveness) aligns only once.
    public func embed(chip: RGBImage, runner: any TensorRunner) async throws -> [Float] {
        let outputs = try await runner.run([Self.inputName: preprocess(chip: chip)])
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
