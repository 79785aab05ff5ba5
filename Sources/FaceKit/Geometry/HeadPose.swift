import Foundation

/// Head pose in degrees, in the frame of the image as the camera saw it:
/// - yaw: positive when the nose points towards larger image x (the subject turned to their left,
///   which is the viewer's right);
/// - pitch: positive when the chin is raised (the subject looks up);
/// - roll: positive when the eye with the larger x is lower (the head tilted clockwise on screen).
/// Mirroring the image flips the signs of yaw and roll and keeps pitch.
public struct HeadPose: Sendable, Codable, Equatable {
    public enum Source: String, Sendable, Codable {
        /// From YuNet's five points: cheap, every detection has it, coarse (about ±10°).
        case landmarks
        /// From the 468-point mesh's 3-D axes: finer, only where the mesh runs.
        case mesh
    }
    public var yaw: Float
    public var pitch: Float
    public var roll: Float
    public var source: Source

    public init(yaw: Float, pitch: Float, roll: Float, source: Source) {
        self.yaw = yaw
        self.pitch = pitch
        self.roll = roll
        self.source = source
    }
}

extension DetectedFace {
    /// Where the nose tip sits between the eye line and the mouth line of a level face, as a
    /// fraction of the eye–mouth distance: the mean of YuNet's points on the test photos as taken
    /// (0.490–0.628, mean 0.570; `facesocial bench faces`, docs/models.md "Head pose").
    public static let levelNoseFraction: Float = 0.57

    /// Pitch in degrees from the five landmarks. The nose tip sits in front of the eye–mouth
    /// plane (about half the eye distance, as for yaw), so raising the chin moves it up towards
    /// the eye line: the shift of its fraction along the eye–mouth axis, times that axis's length
    /// over the nose's depth, is tan(pitch).
    public var pitch: Float {
        guard let (eyes, eyeDistance, ax, ay, axis, nose) = eyeMouthFrame else { return 0 }
        let fraction = ((nose.x - eyes.x) * ax + (nose.y - eyes.y) * ay) / (axis * axis)
        return atan((Self.levelNoseFraction - fraction) * axis / (0.5 * eyeDistance)) * 180 / .pi
    }

    /// The five-point pose's frame: the eye midpoint, the eye distance, the axis from the eye
    /// midpoint to the mouth midpoint (its components and length) and the nose tip; nil without
    /// five landmarks or with a degenerate face.
    var eyeMouthFrame: (eyes: Point, eyeDistance: Float, ax: Float, ay: Float, axis: Float, nose: Point)? {
        guard landmarks.count >= 5 else { return nil }
        let (e0, e1, nose, m0, m1) = (landmarks[0], landmarks[1], landmarks[2], landmarks[3], landmarks[4])
        let eyes = Point(x: (e0.x + e1.x) / 2, y: (e0.y + e1.y) / 2)
        let mouth = Point(x: (m0.x + m1.x) / 2, y: (m0.y + m1.y) / 2)
        let eyeDistance = hypot(e1.x - e0.x, e1.y - e0.y)
        let (ax, ay) = (mouth.x - eyes.x, mouth.y - eyes.y)
        let axis = hypot(ax, ay)
        guard eyeDistance > 0, axis > 0 else { return nil }
        return (eyes, eyeDistance, ax, ay, axis, nose)
    }

    /// The pose from the five landmarks.
    public var pose: HeadPose { HeadPose(yaw: yaw, pitch: pitch, roll: roll, source: .landmarks) }
}

extension DenseLandmarks {
    /// Point pairs across the face (subject's right, then left, in MediaPipe's topology): outer
    /// and inner eye corners, mouth corners, cheek edges. Their mean direction is the face's x axis.
    static let acrossPairs = [(33, 263), (133, 362), (61, 291), (234, 454)]
    /// Point pairs down the face: forehead to chin, brow middle to lower lip.
    static let downPairs = [(10, 152), (9, 17)]

    /// The pose from the mesh's 3-D points (x, y in image pixels, z the network's depth on the x
    /// scale, smaller nearer the camera). The face's x axis is the mean of the `acrossPairs`
    /// directions, its y axis the mean of the `downPairs` made orthogonal to x; yaw is x's angle
    /// out of the image plane, pitch y's (negated: a raised chin comes nearer), roll x's angle in
    /// the image plane. Nil when the mesh is not MediaPipe's 468 points.
    public var pose: HeadPose? {
        guard points.count >= 468 else { return nil }
        func direction(_ pairs: [(Int, Int)]) -> (Float, Float, Float) {
            var v: (Float, Float, Float) = (0, 0, 0)
            for (a, b) in pairs {
                let (p, q) = (points[a], points[b])
                let d = (q.x - p.x, q.y - p.y, q.z - p.z)
                let n = (d.0 * d.0 + d.1 * d.1 + d.2 * d.2).squareRoot()
                guard n > 0 else { continue }
                v = (v.0 + d.0 / n, v.1 + d.1 / n, v.2 + d.2 / n)
            }
            let n = (v.0 * v.0 + v.1 * v.1 + v.2 * v.2).squareRoot()
            return n > 0 ? (v.0 / n, v.1 / n, v.2 / n) : (1, 0, 0)
        }
        let x = direction(Self.acrossPairs)
        var y = direction(Self.downPairs)
        let along = y.0 * x.0 + y.1 * x.1 + y.2 * x.2
        y = (y.0 - along * x.0, y.1 - along * x.1, y.2 - along * x.2)
        let ny = (y.0 * y.0 + y.1 * y.1 + y.2 * y.2).squareRoot()
        guard ny > 0 else { return nil }
        y = (y.0 / ny, y.1 / ny, y.2 / ny)
        let degrees: Float = 180 / .pi
        return HeadPose(
            yaw: atan2(x.2, hypot(x.0, x.1)) * degrees, pitch: atan2(-y.2, hypot(y.0, y.1)) * degrees,
            roll: atan2(x.1, x.0) * degrees, source: .mesh)
    }
}
