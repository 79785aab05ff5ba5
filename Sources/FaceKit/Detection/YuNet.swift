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

    /// Below this share of the square's pixels an image-shaped input pays for itself: the
    /// dynamically shaped compile that runs it costs about 15 % more per pixel than the static
    /// square (YuNet bf16, 2 callers, on the EPYC of docs/benchmarks.md: 640×640 static 256
    /// inferences/s, dynamic 215; 448×640 dynamic 311).
    static let fittedAreaShare = 0.85

    public init() {}

    /// The network sees a 640×640 BGR letterbox with values 0…255.
    public func preprocess(_ image: RGBImage) -> (Tensor, LetterboxGeometry) {
        preprocess(image, sizeMultiple: nil)
    }

    /// The same scale as the square letterbox, on a canvas of the image's own aspect when the
    /// runner takes it (`inputSize(…)`): the padding the square adds is not run through the network.
    public func preprocess(_ image: RGBImage, sizeMultiple: Int?) -> (Tensor, LetterboxGeometry) {
        let size = Self.inputSize(imageWidth: image.width, imageHeight: image.height, sizeMultiple: sizeMultiple)
        return Preprocessing.letterbox(
            image, width: size.width, height: size.height, order: Self.channelOrder,
            normalization: Self.normalization)
    }

    /// The input canvas for an image: its size at the square letterbox's scale, each side rounded
    /// up to `sizeMultiple` (the coarsest stride, so every head's grid is whole), or the 640×640
    /// square when there is no multiple or the fitted canvas would not save enough pixels.
    public static func inputSize(imageWidth: Int, imageHeight: Int, sizeMultiple: Int?) -> (width: Int, height: Int) {
        let square = (width: inputSize, height: inputSize)
        guard let step = sizeMultiple, step > 0, inputSize % step == 0, imageWidth > 0, imageHeight > 0 else {
            return square
        }
        let scale = min(Float(inputSize) / Float(imageWidth), Float(inputSize) / Float(imageHeight))
        func fitted(_ side: Int) -> Int {
            let content = max(1, min(inputSize, Int((Float(side) * scale).rounded())))
            return (content + step - 1) / step * step
        }
        let width = fitted(imageWidth)
        let height = fitted(imageHeight)
        guard Double(width * height) <= fittedAreaShare * Double(inputSize * inputSize) else { return square }
        return (width, height)
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
            let cols = geometry.canvasWidth / stride
            let cells = cols * (geometry.canvasHeight / stride)
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
