import FaceKit
import Vapor

/// JSON shapes of detected faces, shared by every route that reports faces.
struct BoxDTO: Content, Equatable {
    let x: Float
    let y: Float
    let width: Float
    let height: Float

    init(_ box: Box) {
        x = Self.round(box.x)
        y = Self.round(box.y)
        width = Self.round(box.width)
        height = Self.round(box.height)
    }

    static func round(_ v: Float) -> Float { (v * 100).rounded() / 100 }
}

struct PointDTO: Content, Equatable {
    let x: Float
    let y: Float
    init(_ p: Point) {
        x = BoxDTO.round(p.x)
        y = BoxDTO.round(p.y)
    }
}

/// The five landmarks, named from the subject's point of view: `right_eye` is the subject's right
/// eye, which appears on the left of a frontal photo.
struct LandmarksDTO: Content, Equatable {
    let rightEye: PointDTO
    let leftEye: PointDTO
    let nose: PointDTO
    let mouthRight: PointDTO
    let mouthLeft: PointDTO

    init(_ points: [Point]) {
        rightEye = PointDTO(points[0])
        leftEye = PointDTO(points[1])
        nose = PointDTO(points[2])
        mouthRight = PointDTO(points[3])
        mouthLeft = PointDTO(points[4])
    }
}

/// Head pose in degrees (conventions in FaceKit's `HeadPose` and docs/models.md "Head pose").
struct PoseDTO: Content, Equatable {
    let yaw: Float
    let pitch: Float
    let roll: Float
    /// `landmarks` (the detector's five points) or `mesh` (the 468-point mesh).
    let source: String

    init(_ pose: HeadPose) {
        yaw = (pose.yaw * 10).rounded() / 10
        pitch = (pose.pitch * 10).rounded() / 10
        roll = (pose.roll * 10).rounded() / 10
        source = pose.source.rawValue
    }
}

struct DetectedFaceDTO: Content, Equatable {
    let bbox: BoxDTO
    let score: Float
    let landmarks: LandmarksDTO
    let pose: PoseDTO
    /// Degrees the image was turned clockwise for the detector to find this face (`auto_rotate`).
    let rotation: Int

    init(_ face: DetectedFace) {
        bbox = BoxDTO(face.box)
        score = (face.score * 10000).rounded() / 10000
        landmarks = LandmarksDTO(face.landmarks)
        pose = PoseDTO(face.pose)
        rotation = face.rotation
    }
}

struct ImageSizeDTO: Content, Equatable {
    let width: Int
    let height: Int
}

struct DetectResponse: Content {
    let faces: [DetectedFaceDTO]
    let faceCount: Int
    let image: ImageSizeDTO
}
