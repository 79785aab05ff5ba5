import Foundation

/// Why a face is not good enough, with a stable code, what was measured and the limit it broke.
public struct QualityProblem: Sendable, Codable, Equatable {
    public enum Code: String, Sendable, Codable, CaseIterable {
        case faceTooSmall = "FACE_TOO_SMALL"
        case blurry = "BLURRY"
        case tooDark = "TOO_DARK"
        case overexposed = "OVEREXPOSED"
        case extremePose = "EXTREME_POSE"
        case lowDetectionScore = "LOW_DETECTION_SCORE"
        case cutOff = "CUT_OFF"
    }
    public var code: Code
    /// Which measurement: `size`, `sharpness`, `brightness`, `yaw`, `roll`, `detection_score`,
    /// `edge_margin`.
    public var measure: String
    public var value: Float
    public var threshold: Float

    public init(code: Code, measure: String, value: Float, threshold: Float) {
        self.code = code
        self.measure = measure
        self.value = value
        self.threshold = threshold
    }
}

/// How strict a quality gate is, Rekognition's `QualityFilter` levels: `none` lets everything
/// through, `auto` is `medium`. The limits of each level are in `QualityLimits.table`.
public enum QualityFilter: String, Sendable, CaseIterable {
    case none, low, medium, high, auto

    public var limits: QualityLimits? {
        switch self {
        case .none: nil
        case .low: QualityLimits.low
        case .medium, .auto: QualityLimits.medium
        case .high: QualityLimits.high
        }
    }
}

/// The limits of one quality level. Set from `facesocial bench faces` on the test photos and on
/// copies of them made blurred, darkened, overexposed, downscaled, turned and cut off
/// (docs/thresholds.md, "Quality checks"): every photo as taken passes `high`, and the stronger
/// copies of each kind of damage fail `medium`.
public struct QualityLimits: Sendable, Equatable {
    /// Shorter side of the face box, pixels.
    public var minSize: Float
    /// Laplacian variance of the aligned chip (`FaceQuality.sharpness`).
    public var minSharpness: Float
    /// Mean gray level of the chip's face region, 0…255.
    public var minBrightness: Float
    public var maxBrightness: Float
    /// Degrees, either way.
    public var maxYaw: Float
    public var maxRoll: Float
    public var minDetectionScore: Float
    /// The nearest landmark's distance from an image edge, in eye distances.
    public var minEdgeMargin: Float

    public static let low = QualityLimits(
        minSize: 24, minSharpness: 25, minBrightness: 25, maxBrightness: 235, maxYaw: 60, maxRoll: 45,
        minDetectionScore: 0.5, minEdgeMargin: 0)
    public static let medium = QualityLimits(
        minSize: 40, minSharpness: 60, minBrightness: 40, maxBrightness: 220, maxYaw: 45, maxRoll: 30,
        minDetectionScore: 0.7, minEdgeMargin: 0.25)
    public static let high = QualityLimits(
        minSize: 64, minSharpness: 120, minBrightness: 60, maxBrightness: 205, maxYaw: 30, maxRoll: 20,
        minDetectionScore: 0.8, minEdgeMargin: 0.5)
}

extension FaceQuality {
    /// Every limit of `limits` this face breaks, in a fixed order; empty when it passes.
    public func problems(_ limits: QualityLimits) -> [QualityProblem] {
        var found: [QualityProblem] = []
        func check(_ broken: Bool, _ code: QualityProblem.Code, _ measure: String, _ value: Float, _ limit: Float) {
            if broken { found.append(QualityProblem(code: code, measure: measure, value: value, threshold: limit)) }
        }
        check(size < limits.minSize, .faceTooSmall, "size", size, limits.minSize)
        check(sharpness < limits.minSharpness, .blurry, "sharpness", sharpness, limits.minSharpness)
        check(brightness < limits.minBrightness, .tooDark, "brightness", brightness, limits.minBrightness)
        check(brightness > limits.maxBrightness, .overexposed, "brightness", brightness, limits.maxBrightness)
        check(abs(yaw) > limits.maxYaw, .extremePose, "yaw", yaw, limits.maxYaw)
        check(abs(roll) > limits.maxRoll, .extremePose, "roll", roll, limits.maxRoll)
        check(
            detectionScore < limits.minDetectionScore, .lowDetectionScore, "detection_score", detectionScore,
            limits.minDetectionScore)
        check(edgeMargin < limits.minEdgeMargin, .cutOff, "edge_margin", edgeMargin, limits.minEdgeMargin)
        return found
    }
}

extension DetectedFace {
    /// The landmark nearest an edge of a `width`×`height` image: its distance from that edge over
    /// the eye distance (negative outside the image; 1 without landmarks).
    public func edgeMargin(width: Int, height: Int) -> Float {
        guard landmarks.count >= 2 else { return 1 }
        let eyes = hypot(landmarks[1].x - landmarks[0].x, landmarks[1].y - landmarks[0].y)
        guard eyes > 0 else { return 1 }
        let nearest = landmarks.map { min($0.x, $0.y, Float(width) - $0.x, Float(height) - $0.y) }.min()!
        return nearest / eyes
    }
}
