/// One face found by a detector, in the original image's pixel coordinates.
public struct DetectedFace: Sendable, Equatable {
    public var box: Box
    public var score: Float
    /// Five landmarks in the SFace template's order: the subject's right eye (the one with the
    /// smaller x when the face is upright), the left eye, the nose tip, the right mouth corner,
    /// the left one.
    public var landmarks: [Point]
    /// How far the upload was turned clockwise, in degrees (0, 90, 180 or 270), for the detector
    /// to find this face upright (`OrientationSearch`); its box and points are in the upload's
    /// coordinates all the same.
    public var rotation: Int

    public init(box: Box, score: Float, landmarks: [Point], rotation: Int = 0) {
        self.box = box
        self.score = score
        self.landmarks = landmarks
        self.rotation = rotation
    }

    public static let landmarkNames = ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"]

    /// The same face in an image `x` times wider and `y` times taller.
    public func scaled(x: Float, y: Float) -> DetectedFace {
        DetectedFace(
            box: Box(x: box.x * x, y: box.y * y, width: box.width * x, height: box.height * y), score: score,
            landmarks: landmarks.map { Point(x: $0.x * x, y: $0.y * y) }, rotation: rotation)
    }
}

/// Options every detector honours.
public struct DetectionOptions: Sendable, Equatable {
    public var confidenceThreshold: Float
    public var nmsThreshold: Float
    public var maxFaces: Int
    public var minFaceSize: Float
    /// Whether to look in quarter-turned copies too (`OrientationSearch`; the detectors
    /// themselves only see what they are given).
    public var rotation: RotationSearch

    public init(
        confidenceThreshold: Float = 0.6, nmsThreshold: Float = 0.3, maxFaces: Int = 100, minFaceSize: Float = 0,
        rotation: RotationSearch = .whenNoFace
    ) {
        self.confidenceThreshold = confidenceThreshold
        self.nmsThreshold = nmsThreshold
        self.maxFaces = maxFaces
        self.minFaceSize = minFaceSize
        self.rotation = rotation
    }
}

public enum NonMaximumSuppression {
    /// Greedy NMS: keeps the highest-scoring face, drops those overlapping it by more than
    /// `threshold` IoU, repeats. Returns at most `limit` faces, best first.
    public static func apply(_ faces: [DetectedFace], threshold: Float, limit: Int) -> [DetectedFace] {
        let sorted = faces.sorted { $0.score > $1.score }
        var kept: [DetectedFace] = []
        for face in sorted {
            if kept.count >= limit { break }
            if kept.allSatisfy({ $0.box.iou(face.box) <= threshold }) { kept.append(face) }
        }
        return kept
    }
}
