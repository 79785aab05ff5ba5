import Foundation

/// How usable a detected face is for recognition, with the measurements behind the score.
public struct FaceQuality: Sendable, Codable, Equatable {
    /// Overall 0…1 (see `FaceQualityAssessor` for how the parts combine).
    public var score: Float
    /// The face box's shorter side in image pixels.
    public var size: Float
    /// Variance of the 4-neighbour Laplacian of the grayscale aligned 112×112 chip's face region.
    public var sharpness: Float
    /// Head yaw in degrees estimated from the landmarks; positive when the nose points towards
    /// larger image x (the subject turned to their left).
    public var yaw: Float
    /// Head roll in degrees from the eye line; positive when the eye with the larger x is lower
    /// (a clockwise tilt on screen).
    public var roll: Float
    /// Mean gray level 0…255 of the chip's face region.
    public var brightness: Float
    /// Each component's 0…1 subscore: "size", "sharpness", "pose", "brightness".
    public var parts: [String: Float]
    /// The detector's score for the face (the quality checks hold it to a level's minimum).
    public var detectionScore: Float
    /// How far the landmark nearest an image edge is from it, over the eye distance (negative
    /// when the detector put it outside): a face cut off by the edge has a landmark at or past it,
    /// and a whole face keeps its eyes and mouth corners about half an eye distance in from its
    /// own outline.
    public var edgeMargin: Float

    public init(
        score: Float, size: Float, sharpness: Float, yaw: Float, roll: Float, brightness: Float, parts: [String: Float],
        detectionScore: Float = 1, edgeMargin: Float = 1
    ) {
        self.score = score
        self.size = size
        self.sharpness = sharpness
        self.yaw = yaw
        self.roll = roll
        self.brightness = brightness
        self.parts = parts
        self.detectionScore = detectionScore
        self.edgeMargin = edgeMargin
    }
}

extension DetectedFace {
    /// Yaw in degrees from the five landmarks. The nose tip sits in front of the plane of the eyes
    /// and mouth, so turning the head moves it sideways off the line joining the eye midpoint and
    /// the mouth midpoint. With the nose's depth about half the eye distance (adult anthropometry:
    /// ~30 mm against ~63 mm), that offset over the eye distance is ≈ 0.5·tan(yaw). Coarse (±10°)
    /// but monotone, which is what a quality gate needs.
    public var yaw: Float {
        guard let (eyes, eyeDistance, ax, ay, axis, nose) = eyeMouthFrame else { return 0 }
        // Signed distance of the nose from the eye–mouth axis; positive towards larger x for an
        // upright face (the axis points down, so its right-hand normal (−ay, ax) points to −x).
        let offset = -((nose.x - eyes.x) * (-ay) + (nose.y - eyes.y) * ax) / axis
        // The eye distance itself shrinks by cos(yaw); the ratio formula absorbs that to first
        // order, so no separate correction.
        return atan(offset / eyeDistance / 0.5) * 180 / .pi
    }

    /// Roll in degrees: the angle of the line from the first eye to the second.
    public var roll: Float {
        guard landmarks.count >= 2 else { return 0 }
        let (e0, e1) = (landmarks[0], landmarks[1])
        return atan2(e1.y - e0.y, e1.x - e0.x) * 180 / .pi
    }
}

/// Scores face quality from the detection and the aligned chip.
///
/// Subscores (each 0…1):
/// - size: linear from 0 at a 32 px shorter box side to 1 at 112 px (the recognition chip's size;
///   bigger faces add no detail after alignment).
/// - sharpness: v² / (v² + h²) of the Laplacian variance v with h = `sharpnessHalf` = 150, a
///   saturating curve that is 0.5 at h. Calibrated on the test photos' YuNet faces: sharp chips
///   measure 570–2200 (subscore ≥ 0.93), the same chips after a 5×5 box blur 21–45 (≤ 0.09);
///   the square makes the fall between those two groups steep.
/// - pose: (1 − (yaw/60°)²)·(1 − (roll/45°)²), clamped at 0: flat near frontal, 0 at 60° yaw or
///   45° roll, where five-point alignment stops producing a usable chip.
/// - brightness: 1 for a mean gray of 70…190, falling linearly to 0 at 15 and at 245.
///
/// The score is a weighted geometric mean (size 0.3, sharpness 0.3, pose 0.25, brightness 0.15):
/// unlike an arithmetic mean, one unusable component (a 20 px face, a black chip) pulls the whole
/// score to 0 instead of being averaged away by the others.
public enum FaceQualityAssessor {
    public static let weights: [String: Float] = ["size": 0.3, "sharpness": 0.3, "pose": 0.25, "brightness": 0.15]
    public static let sharpnessHalf: Float = 150

    /// The chip region measured for sharpness and brightness: rows 24..<104 and columns
    /// 20..<92 of the 112×112 template chip hold brows to chin and cheek to cheek, so the
    /// background (often deliberately blurred in portraits) and the black fill where the chip
    /// leaves the image (whose hard edge would read as sharpness) mostly stay out.
    static let region = (x: 20..<92, y: 24..<104)

    public static func assess(image: RGBImage, face: DetectedFace, chip: RGBImage? = nil) -> FaceQuality {
        let chip = chip ?? FaceAlignment.chip(image, landmarks: face.landmarks)
        let (sharpness, brightness) = measure(chip)
        let size = min(face.box.width, face.box.height)
        let yaw = face.yaw
        let roll = face.roll
        let parts: [String: Float] = [
            "size": sizeScore(size),
            "sharpness": sharpnessScore(sharpness),
            "pose": poseScore(yaw: yaw, roll: roll),
            "brightness": brightnessScore(brightness),
        ]
        return FaceQuality(
            score: combine(parts), size: size, sharpness: sharpness, yaw: yaw, roll: roll, brightness: brightness,
            parts: parts, detectionScore: face.score,
            edgeMargin: face.edgeMargin(width: image.width, height: image.height))
    }

    public static func sizeScore(_ size: Float) -> Float { clamp01((size - 32) / (112 - 32)) }

    public static func sharpnessScore(_ variance: Float) -> Float {
        guard variance > 0 else { return 0 }
        let r = variance / sharpnessHalf
        return r * r / (r * r + 1)
    }

    public static func poseScore(yaw: Float, roll: Float) -> Float {
        let y = yaw / 60
        let r = roll / 45
        return clamp01(1 - y * y) * clamp01(1 - r * r)
    }

    public static func brightnessScore(_ mean: Float) -> Float {
        if mean < 70 { return clamp01((mean - 15) / (70 - 15)) }
        if mean > 190 { return clamp01((245 - mean) / (245 - 190)) }
        return 1
    }

    /// Weighted geometric mean: exp(Σ wᵢ·ln pᵢ / Σ wᵢ); any zero part gives 0.
    public static func combine(_ parts: [String: Float]) -> Float {
        var logSum: Float = 0
        var weightSum: Float = 0
        for (name, value) in parts {
            let w = weights[name] ?? 0
            guard w > 0 else { continue }
            if value <= 0 { return 0 }
            logSum += w * log(value)
            weightSum += w
        }
        return weightSum > 0 ? clamp01(exp(logSum / weightSum)) : 0
    }

    /// Laplacian variance and mean gray over `region` (scaled to the chip's size if not 112).
    public static func measure(_ chip: RGBImage) -> (laplacianVariance: Float, meanGray: Float) {
        let w = chip.width
        let h = chip.height
        let s = Float(w) / Float(FaceAlignment.templateSize)
        let sy = Float(h) / Float(FaceAlignment.templateSize)
        // Keep one pixel of margin for the Laplacian's neighbours.
        let x0 = max(1, Int(Float(region.x.lowerBound) * s))
        let x1 = min(w - 1, Int(Float(region.x.upperBound) * s))
        let y0 = max(1, Int(Float(region.y.lowerBound) * sy))
        let y1 = min(h - 1, Int(Float(region.y.upperBound) * sy))
        guard x1 > x0, y1 > y0 else { return (0, 0) }
        var gray = [Float](repeating: 0, count: w * h)
        chip.pixels.withUnsafeBufferPointer { src in
            gray.withUnsafeMutableBufferPointer { g in
                for i in 0..<(w * h) {
                    g[i] = 0.299 * Float(src[3 * i]) + 0.587 * Float(src[3 * i + 1]) + 0.114 * Float(src[3 * i + 2])
                }
            }
        }
        // Accumulate in Double: sums of squares of values up to ~1000 over thousands of pixels.
        var sum = 0.0
        var sumSquares = 0.0
        var graySum = 0.0
        gray.withUnsafeBufferPointer { g in
            for y in y0..<y1 {
                for x in x0..<x1 {
                    let i = y * w + x
                    let lap = Double(g[i - 1] + g[i + 1] + g[i - w] + g[i + w] - 4 * g[i])
                    sum += lap
                    sumSquares += lap * lap
                    graySum += Double(g[i])
                }
            }
        }
        let n = Double((x1 - x0) * (y1 - y0))
        let mean = sum / n
        return (Float(max(0, sumSquares / n - mean * mean)), Float(graySum / n))
    }

    @inline(__always)
    static func clamp01(_ v: Float) -> Float { min(max(v, 0), 1) }
}
