import Foundation

/// A 3-D landmark: x, y in image pixels, z (depth, negative towards the camera) in the same
/// pixel scale as x.
public struct Point3: Sendable, Codable, Equatable {
    public var x: Float
    public var y: Float
    public var z: Float

    public init(x: Float, y: Float, z: Float) {
        self.x = x
        self.y = y
        self.z = z
    }
}

/// The 468-point MediaPipe face mesh of one face.
public struct DenseLandmarks: Sendable, Codable, Equatable {
    /// In MediaPipe's canonical topology (1 is the nose tip, 33 / 263 the outer eye corners, …).
    public var points: [Point3]
    /// Sigmoid of the face-presence logit: low when the crop holds no face.
    public var presence: Float

    public init(points: [Point3], presence: Float) {
        self.points = points
        self.presence = presence
    }

    /// YuNet's five points read off the mesh (eye centres from each eye's corners, the nose tip,
    /// the mouth corners), in the detector's order; nil for a mesh of another topology.
    public var fivePoints: [Point]? {
        guard points.count >= 468 else { return nil }
        func mid(_ a: Int, _ b: Int) -> Point {
            Point(x: (points[a].x + points[b].x) / 2, y: (points[a].y + points[b].y) / 2)
        }
        func at(_ i: Int) -> Point { Point(x: points[i].x, y: points[i].y) }
        return [mid(33, 133), mid(263, 362), at(1), at(61), at(291)]
    }
}

/// MediaPipe's face landmark network (face_landmark.tflite, converted to ONNX): 468 points from
/// a 192×192 crop around a detected face.
public struct FaceMesh: Sendable {
    public static let inputName = "input_1"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .rgb
    public static let landmarksOutput = "conv2d_20"
    public static let presenceOutput = "conv2d_30"
    public static let inputSize = 192
    public static let pointCount = 468
    /// Values 0…1 (the manifest's `input.range`).
    public static let normalization = Normalization.unitRange
    /// MediaPipe enlarges the detector's square by 1.5 before landmarking; the network was trained
    /// on faces framed that way.
    public static let cropExpansion: Float = 1.5

    public init() {}

    /// MediaPipe's crop: a square of side max(w, h) × 1.5 around the box centre, the eyes level (as
    /// MediaPipe's pipeline does with the detector's eye keypoints), outside the image black (it
    /// pads with zeros too).
    static let levelledCrop = LevelledCrop(size: inputSize, expansion: cropExpansion, border: .constant)

    public func cropTransform(face: DetectedFace) -> SimilarityTransform {
        Self.levelledCrop.transform(face: face)
    }

    public func crop(_ image: RGBImage, transform t: SimilarityTransform) -> RGBImage {
        Self.levelledCrop.crop(image, transform: t)
    }

    /// RGB planes in 0…1.
    public func preprocess(crop: RGBImage) -> Tensor {
        precondition(
            crop.width == Self.inputSize && crop.height == Self.inputSize, "the face mesh needs a 192×192 crop")
        return Preprocessing.planar(
            crop, order: Self.channelOrder, normalization: Self.normalization)
    }

    /// Maps the crop-pixel points back through `transform` into the image; z is divided by the
    /// same scale as x and y.
    public func postprocess(_ outputs: [String: Tensor], transform: SimilarityTransform) throws -> DenseLandmarks {
        guard let mesh = outputs[Self.landmarksOutput] else {
            throw DetectorError.missingOutput("face mesh \(Self.landmarksOutput)")
        }
        guard let presence = outputs[Self.presenceOutput] else {
            throw DetectorError.missingOutput("face mesh \(Self.presenceOutput)")
        }
        guard mesh.count == Self.pointCount * 3, presence.count == 1 else {
            throw DetectorError.unexpectedShape("face mesh \(mesh.shape) / \(presence.shape)")
        }
        let inverse = transform.inverse
        let zScale = inverse.scale
        var points: [Point3] = []
        points.reserveCapacity(Self.pointCount)
        mesh.data.withUnsafeBufferPointer { m in
            for i in 0..<Self.pointCount {
                let p = inverse.apply(Point(x: m[3 * i], y: m[3 * i + 1]))
                points.append(Point3(x: p.x, y: p.y, z: m[3 * i + 2] * zScale))
            }
        }
        let logit = presence.data[0]
        return DenseLandmarks(points: points, presence: 1 / (1 + exp(-logit)))
    }

    /// The mesh of a detected face. The crop is levelled by the detector's eyes; where the mesh
    /// finds the eye line more than `refitDegrees` away from that, it runs once more on a crop
    /// levelled by its own eyes (MediaPipe's trackers level each frame by the last one's mesh).
    /// YuNet's eyes barely follow an in-plane turn of a small face (`facesocial bench faces`: a
    /// 20° turn moved obama3's eye line by 2°), and the network, trained on level crops, then
    /// under-reads the tilt too; the second pass reads it.
    public func landmarks(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws
        -> DenseLandmarks
    {
        let first = try await pass(image, face: face, runner: runner)
        // Only a mesh that found two eyes apart (a quarter of the box at least) can level a crop.
        guard let levelled = first.fivePoints, face.landmarks.count >= 2,
            hypot(levelled[1].x - levelled[0].x, levelled[1].y - levelled[0].y) > 0.25 * face.box.width
        else { return first }
        let turn = abs(Self.eyeAngle(levelled) - Self.eyeAngle(face.landmarks)) * 180 / .pi
        guard turn > Self.refitDegrees else { return first }
        return try await pass(
            image, face: DetectedFace(box: face.box, score: face.score, landmarks: levelled), runner: runner)
    }

    /// How far (degrees) the mesh's eye line may differ from the detector's before a second pass.
    public static let refitDegrees: Float = 3

    static func eyeAngle(_ points: [Point]) -> Float { atan2(points[1].y - points[0].y, points[1].x - points[0].x) }

    private func pass(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws -> DenseLandmarks {
        let transform = cropTransform(face: face)
        let input = preprocess(crop: crop(image, transform: transform))
        let outputs = try await runner.run([Self.inputName: input])
        return try postprocess(outputs, transform: transform)
    }
}
