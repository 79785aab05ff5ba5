import FaceKit
import Foundation
import Vapor

/// One failed quality check: its stable code, what was measured, and the limit it broke.
struct QualityProblemDTO: Content, Equatable {
    let code: String
    let measure: String
    let value: Float
    let threshold: Float

    init(_ p: QualityProblem) {
        code = p.code.rawValue
        measure = p.measure
        value = (p.value * 1000).rounded() / 1000
        threshold = p.threshold
    }
}

struct QualityDTO: Content {
    let score: Float
    let size: Float
    let sharpness: Float
    let yaw: Float
    let roll: Float
    let brightness: Float
    let detectionScore: Float
    let edgeMargin: Float
    let parts: [String: Float]
    /// The checks of the `medium` level (enrolment's default, `quality_filter=auto`) this face fails.
    let problems: [QualityProblemDTO]

    init(_ q: FaceQuality) {
        func r(_ v: Float, _ digits: Float = 1000) -> Float { (v * digits).rounded() / digits }
        score = r(q.score)
        size = r(q.size, 10)
        sharpness = r(q.sharpness, 10)
        yaw = r(q.yaw, 10)
        roll = r(q.roll, 10)
        brightness = r(q.brightness, 10)
        detectionScore = r(q.detectionScore, 10000)
        edgeMargin = r(q.edgeMargin)
        parts = q.parts.mapValues { r($0) }
        problems = q.problems(QualityLimits.medium).map(QualityProblemDTO.init)
    }
}

/// The expression a face shows, by a weak model (docs/models.md, "Emotion").
struct EmotionDTO: Content {
    /// The most probable of the seven.
    let dominant: String
    /// angry, disgust, fear, happy, sad, surprise, neutral: each 0…1, summing to 1.
    let probabilities: [String: Float]

    init(_ e: EmotionEstimate) {
        dominant = e.dominant
        probabilities = e.probabilities.mapValues { ($0 * 10000).rounded() / 10000 }
    }
}

struct AttributesDTO: Content {
    struct Age: Content {
        let value: Float
        let low: Float
        let high: Float
    }
    struct Gender: Content {
        let value: String
        let confidence: Float
    }
    let age: Age?
    let gender: Gender?
}

struct LivenessDTO: Content {
    let isReal: Bool
    let score: Float
    let probability: Float
    let threshold: Float

    init(_ l: LivenessResult) {
        isReal = l.isReal
        score = (l.score * 1000).rounded() / 1000
        probability = (l.probability * 10000).rounded() / 10000
        threshold = l.threshold
    }
}

struct DenseLandmarksDTO: Content {
    let count: Int
    let presence: Float
    /// [x, y, z] per point, in image pixels (z on the x scale, relative depth).
    let points: [[Float]]

    init(_ d: DenseLandmarks) {
        count = d.points.count
        presence = (d.presence * 10000).rounded() / 10000
        points = d.points.map { [($0.x * 10).rounded() / 10, ($0.y * 10).rounded() / 10, ($0.z * 10).rounded() / 10] }
    }
}

/// An embedding as JSON numbers or as base64 of little-endian float32 (4 bytes a value).
enum EmbeddingEncoding: String {
    case float, base64

    func encode(_ v: [Float]) -> EmbeddingDTO {
        switch self {
        case .float: .floats(v)
        case .base64: .base64(Self.base64(v))
        }
    }

    static func base64(_ v: [Float]) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(v.count * 4)
        for value in v { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return Data(bytes).base64EncodedString()
    }

    static func decodeBase64(_ text: String) -> [Float]? {
        guard let data = Data(base64Encoded: text), data.count % 4 == 0, !data.isEmpty else { return nil }
        return stride(from: 0, to: data.count, by: 4).map { offset in
            let bits = data[data.startIndex + offset..<data.startIndex + offset + 4].enumerated().reduce(UInt32(0)) {
                $0 | UInt32($1.element) << (8 * UInt32($1.offset))
            }
            return Float(bitPattern: bits)
        }
    }
}

enum EmbeddingDTO: Content {
    case floats([Float])
    case base64(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .base64(text)
        } else {
            self = .floats(try container.decode([Float].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .floats(let v): try container.encode(v)
        case .base64(let s): try container.encode(s)
        }
    }
}

/// One face with whatever analyses were computed for it.
struct FaceReportDTO: Content {
    let bbox: BoxDTO
    let score: Float
    let landmarks: LandmarksDTO
    /// From the mesh when the mesh ran (`landmarks` analysis), else from the five points.
    let pose: PoseDTO
    /// Degrees the image was turned clockwise for the detector to find this face (`auto_rotate`).
    let rotation: Int
    let quality: QualityDTO?
    let embedding: EmbeddingDTO?
    let attributes: AttributesDTO?
    let liveness: LivenessDTO?
    let denseLandmarks: DenseLandmarksDTO?
    let emotion: EmotionDTO?

    init(_ r: FaceReport, kinds: Set<AnalysisKind>, encoding: EmbeddingEncoding = .float) {
        bbox = BoxDTO(r.face.box)
        score = (r.face.score * 10000).rounded() / 10000
        landmarks = LandmarksDTO(r.face.landmarks)
        pose = PoseDTO(r.mesh?.pose ?? r.face.pose)
        rotation = r.face.rotation
        quality = kinds.contains(.quality) ? QualityDTO(r.quality) : nil
        embedding = r.embedding.map { encoding.encode($0) }
        if r.age != nil || r.gender != nil {
            attributes = AttributesDTO(
                age: r.age.map {
                    .init(
                        value: ($0.value * 10).rounded() / 10, low: ($0.low * 10).rounded() / 10,
                        high: ($0.high * 10).rounded() / 10)
                },
                gender: r.gender.map { .init(value: $0.value, confidence: ($0.confidence * 10000).rounded() / 10000) })
        } else {
            attributes = nil
        }
        liveness = r.liveness.map(LivenessDTO.init)
        denseLandmarks = r.mesh.map(DenseLandmarksDTO.init)
        emotion = r.emotion.map(EmotionDTO.init)
    }
}

struct AnalyzeResponse: Content {
    let faces: [FaceReportDTO]
    let faceCount: Int
    let image: ImageSizeDTO
}
