import Foundation

/// A face classifier described entirely by data (a manifest entry), so a model such as a deepfake
/// detector can be added without code: a square crop around the face box, resized and normalised,
/// one output turned into per-label probabilities.
public struct FaceCropClassifier: Sendable {
    public enum Activation: String, Sendable, Codable {
        case softmax, sigmoid, none
    }

    public var inputName: String
    public var outputName: String
    public var inputSize: Int
    public var channelOrder: ChannelOrder
    public var normalization: Normalization
    /// Side of the square crop as a multiple of the face box's longer side.
    public var cropScale: Float
    public var labels: [String]
    public var activation: Activation

    public init(
        inputName: String, outputName: String, inputSize: Int, channelOrder: ChannelOrder,
        normalization: Normalization, cropScale: Float, labels: [String], activation: Activation
    ) {
        self.inputName = inputName
        self.outputName = outputName
        self.inputSize = inputSize
        self.channelOrder = channelOrder
        self.normalization = normalization
        self.cropScale = cropScale
        self.labels = labels
        self.activation = activation
    }

    /// The square crop, edges filled by reflection so the network never sees black bars.
    public func crop(_ image: RGBImage, box: Box) -> RGBImage {
        let side = max(box.width, box.height) * cropScale
        let scale = Float(inputSize) / side
        let center = box.center
        let transform = SimilarityTransform(
            a: scale, b: 0, tx: Float(inputSize) / 2 - center.x * scale, ty: Float(inputSize) / 2 - center.y * scale)
        return image.warped(by: transform, width: inputSize, height: inputSize, border: .reflect)
    }

    /// Probability per label for one face.
    public func classify(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws -> [String:
        Float]
    {
        let tensor = Preprocessing.planar(crop(image, box: face.box), order: channelOrder, normalization: normalization)
        let outputs = try await runner.run([inputName: tensor])
        guard let output = outputs[outputName] else { throw DetectorError.missingOutput(outputName) }
        guard output.count == labels.count else {
            throw DetectorError.unexpectedShape("\(outputName) has \(output.count) values for \(labels.count) labels")
        }
        let values: [Float]
        switch activation {
        case .softmax:
            let peak = output.data.max() ?? 0
            let exps = output.data.map { exp($0 - peak) }
            let total = exps.reduce(0, +)
            values = exps.map { $0 / total }
        case .sigmoid:
            values = output.data.map { 1 / (1 + exp(-$0)) }
        case .none:
            values = output.data
        }
        return Dictionary(uniqueKeysWithValues: zip(labels, values))
    }
}
