/// One face found by a detector, in the original image's pixel coordinates.
public struct DetectedFace: Sendable, Equatable {
    public var box: Box
    public var score: Float
    /// Five landmarks in the SFace template's order: the eye with the smaller x (the subject's
    /// right eye), the other eye, the nose tip, the mouth corner with the smaller x, the other one.
    public var landmarks: [Point]

    public init(box: Box, score: Float, landmarks: [Point]) {
        self.box = box
        self.score = score
        self.landmarks = landmarks
    }

    public static let landmarkNames = ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"]

    /// The same face in an image `x` times wider and `y` times taller.
    public func scaled(x: Float, y: Float) -> DetectedFace {
        DetectedFace(
            box: Box(x: box.x * x, y: box.y * y, width: box.width * x, height: box.height * y), score: score,
            landmarks: landmarks.map { Point(x: $0.x * x, y: $0.y * y) })
    }
}

/// Options every detector honours.
public struct DetectionOptions: Sendable, Equatable {
    public var confidenceThreshold: Float
    public var nmsThreshold: Float
    public var maxFaces: Int
    public var minFaceSize: Float

    public init(
        confidenceThreshold: Float = 0.6, nmsThreshold: Float = 0.3, maxFaces: Int = 100, minFaceSize: Float = 0
    ) {
        self.confidenceThreshold = confidenceThreshold
        self.nmsThreshold = nmsThreshold
        self.maxFaces = maxFaces
        self.minFaceSize = minFaceSize
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
