import FaceKit
import Vapor

/// Typed access to request fields with range checks; a bad value is a 400 `VALIDATION_FAILED`
/// naming the field.
extension ImageRequest {
    func float(_ name: String, default fallback: Float, in range: ClosedRange<Float>) throws -> Float {
        guard let raw = fields[name] else { return fallback }
        guard let value = Float(raw.trimmingCharacters(in: .whitespaces)), value.isFinite, range.contains(value) else {
            throw APIError.validation(
                "\(name) must be a number in \(range.lowerBound)...\(range.upperBound), got \"\(raw.prefix(40))\"",
                field: name)
        }
        return value
    }

    func int(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let raw = fields[name] else { return fallback }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw APIError.validation(
                "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got \"\(raw.prefix(40))\"",
                field: name)
        }
        return value
    }

    func bool(_ name: String, default fallback: Bool) throws -> Bool {
        guard let raw = fields[name]?.lowercased() else { return fallback }
        switch raw {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw APIError.validation("\(name) must be true or false", field: name)
        }
    }

    /// The detector options shared by every route that finds faces.
    func detectionOptions(maxFacesLimit: Int) throws -> DetectionOptions {
        DetectionOptions(
            confidenceThreshold: try float("confidence_threshold", default: 0.6, in: 0...1),
            nmsThreshold: try float("nms_threshold", default: 0.3, in: 0...1),
            maxFaces: try int("max_faces", default: maxFacesLimit, in: 1...maxFacesLimit),
            minFaceSize: try float("min_face_size", default: 0, in: 0...8000))
    }

    /// `detector=yunet|retinaface` (default yunet).
    func detector() throws -> DetectorKind {
        let name = fields["detector"] ?? DetectorKind.yunet.rawValue
        guard let detector = DetectorKind(rawValue: name) else {
            throw APIError.validation(
                "detector must be one of \(DetectorKind.allCases.map(\.rawValue).joined(separator: ", "))",
                field: "detector")
        }
        return detector
    }
}
