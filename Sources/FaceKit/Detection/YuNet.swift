import Foundation

/// YuNet (OpenCV model zoo, 2023mar): an anchor-free detector with three stride heads. This type
/// holds its pre- and postprocessing; running the network is the engine's job.
public struct YuNet: Sendable {
    public static let inputSize = 640
    public static let strides = [8, 16, 32]
    public static let inputName = "input"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .bgr
    /// Raw 0…255 values (the manifest's `input.range`).
    public static let normalization = Normalization.identity

    public init() {}

    /// The network sees a 640×640 BGR letterbox with values 0…255.
    public func preprocess(_ image: RGBImage) -> (Tensor, LetterboxGeometry) {
        Preprocessing.letterbox(
            image, width: Self.inputSize, height: Self.inputSize, order: Self.channelOrder,
            normalization: Self.normalization)
    }

    /// Decodes the per-stride heads (`cls_s`, `obj_s`, `bbox_s`, `kps_s`) into faces in the
    /// original image's coordinates, then applies the options (threshold, NMS, size, count).
    public func postprocess(
        _ outputs: [String: Tensor], geometry: LetterboxGeometry, imageWidth: Int, imageHeight: Int,
        options: DetectionOptions
    ) throws -> [DetectedFace] {
        var candidates: [DetectedFace] = []
        let inverse = 1 / geometry.scale
        for stride in Self.strides {
            guard let cls = outputs["cls_\(stride)"], let obj = outputs["obj_\(stride)"],
                let bbox = outputs["bbox_\(stride)"], let kps = outputs["kps_\(stride)"]
            else { throw DetectorError.missingOutput("YuNet stride \(stride)") }
            let cols = Self.inputSize / stride
            let cells = cols * cols
            guard cls.count == cells, obj.count == cells, bbox.count == cells * 4, kps.count == cells * 10 else {
                throw DetectorError.unexpectedShape("YuNet stride \(stride)")
            }
            let s = Float(stride)
            for i in 0..<cells {
                let c = min(max(cls.data[i], 0), 1)
                let o = min(max(obj.data[i], 0), 1)
                let score = (c * o).squareRoot()
                if score < options.confidenceThreshold { continue }
                let row = Float(i / cols)
                let col = Float(i % cols)
                let cx = (col + bbox.data[4 * i]) * s
                let cy = (row + bbox.data[4 * i + 1]) * s
                let w = exp(bbox.data[4 * i + 2]) * s
                let h = exp(bbox.data[4 * i + 3]) * s
                var landmarks: [Point] = []
                landmarks.reserveCapacity(5)
                for k in 0..<5 {
                    let lx = (col + kps.data[10 * i + 2 * k]) * s
                    let ly = (row + kps.data[10 * i + 2 * k + 1]) * s
                    landmarks.append(Point(x: lx * inverse, y: ly * inverse))
                }
                let box = Box(
                    x: (cx - w / 2) * inverse, y: (cy - h / 2) * inverse, width: w * inverse, height: h * inverse)
                candidates.append(DetectedFace(box: box, score: score, landmarks: landmarks))
            }
        }
        return DetectorPostprocessing.finish(
            candidates, imageWidth: imageWidth, imageHeight: imageHeight, options: options)
    }
}

public enum DetectorError: Error, Sendable, CustomStringConvertible {
    case missingOutput(String)
    case unexpectedShape(String)

    public var description: String {
        switch self {
        case .missingOutput(let what): "model output missing: \(what)"
        case .unexpectedShape(let what): "model output has an unexpected shape: \(what)"
        }
    }
}

/// The steps every detector shares after decoding its raw candidates.
public enum DetectorPostprocessing {
    public static func finish(
        _ candidates: [DetectedFace], imageWidth: Int, imageHeight: Int, options: DetectionOptions
    ) -> [DetectedFace] {
        // Clip and size-filter first so that `maxFaces` counts only faces that will be returned.
        let valid = candidates.compactMap { face -> DetectedFace? in
            var face = face
            face.box = face.box.clipped(width: imageWidth, height: imageHeight)
            guard face.box.width > 0, face.box.height > 0 else { return nil }
            guard min(face.box.width, face.box.height) >= options.minFaceSize else { return nil }
            return face
        }
        return NonMaximumSuppression.apply(valid, threshold: options.nmsThreshold, limit: max(0, options.maxFaces))
    }
}
