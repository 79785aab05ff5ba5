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

struct DetectedFaceDTO: Content, Equatable {
    let bbox: BoxDTO
    let score: Float
    let landmarks: LandmarksDTO

    init(_ face: DetectedFace) {
        bbox = BoxDTO(face.box)
        score = (face.score * 10000).rounded() / 10000
        landmarks = LandmarksDTO(face.landmarks)
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
