import Foundation

/// RetinaFace with a MobileNet-0.25 backbone (biubug6 Pytorch_Retinaface weights): an anchor-based
/// detector whose heads regress offsets from fixed prior boxes. This type holds its pre- and
/// postprocessing; running the network is the engine's job.
public struct RetinaFace: Sendable {
    /// The graph takes any size; the manifest fixes it at 640×640 so one compiled model serves all.
    public static let inputSize = 640
    public static let inputName = "input"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .bgr
    public static let steps = [8, 16, 32]
    public static let minSizes: [[Float]] = [[16, 32], [64, 128], [256, 512]]
    /// Box-coding variances of the training code (centre, size).
    public static let variances: (Float, Float) = (0.1, 0.2)
    /// Per-channel means in BGR order (the Caffe/ImageNet convention it was trained with).
    public static let normalization = Normalization(mean: (104, 117, 123))

    public init() {}

    /// The network sees a 640×640 BGR letterbox (top-left, like YuNet) minus the channel means; the
    /// padding is left at zero, i.e. the mean colour after normalisation.
    public func preprocess(_ image: RGBImage) -> (Tensor, LetterboxGeometry) {
        Preprocessing.letterbox(
            image, width: Self.inputSize, height: Self.inputSize, order: Self.channelOrder,
            normalization: Self.normalization)
    }

    /// Prior boxes (cx, cy, w, h), normalised to the input size, in the order the heads emit them:
    /// per step, row by row, column by column, then each min size. 16,800 for 640×640.
    public static func priors(width: Int = inputSize, height: Int = inputSize) -> [Float] {
        var out: [Float] = []
        for (k, step) in steps.enumerated() {
            // Pytorch_Retinaface uses ceil, so a partial last cell still gets priors.
            let rows = (height + step - 1) / step
            let cols = (width + step - 1) / step
            out.reserveCapacity(out.count + rows * cols * minSizes[k].count * 4)
            for i in 0..<rows {
                for j in 0..<cols {
                    for minSize in minSizes[k] {
                        out.append((Float(j) + 0.5) * Float(step) / Float(width))
                        out.append((Float(i) + 0.5) * Float(step) / Float(height))
                        out.append(minSize / Float(width))
                        out.append(minSize / Float(height))
                    }
                }
            }
        }
        return out
    }

    private static let cachedPriors = priors()

    /// Decodes `loc`, `conf` and `landmarks` against the priors into faces in the original image's
    /// coordinates, then applies the options (threshold, NMS, size, count).
    public func postprocess(
        _ outputs: [String: Tensor], geometry: LetterboxGeometry, imageWidth: Int, imageHeight: Int,
        options: DetectionOptions
    ) throws -> [DetectedFace] {
        guard let loc = outputs["loc"] else { throw DetectorError.missingOutput("RetinaFace loc") }
        guard let conf = outputs["conf"] else { throw DetectorError.missingOutput("RetinaFace conf") }
        guard let landms = outputs["landmarks"] else { throw DetectorError.missingOutput("RetinaFace landmarks") }
        let priors = Self.cachedPriors
        let count = priors.count / 4
        guard loc.count == count * 4, conf.count == count * 2, landms.count == count * 10 else {
            throw DetectorError.unexpectedShape(
                "RetinaFace loc \(loc.shape) conf \(conf.shape) landmarks \(landms.shape), expected \(count) priors")
        }
        let (v0, v1) = Self.variances
        // Normalised coordinates → letterbox pixels → original pixels in one factor.
        let toImage = Float(Self.inputSize) / geometry.scale
        var candidates: [DetectedFace] = []
        priors.withUnsafeBufferPointer { prior in
            loc.data.withUnsafeBufferPointer { loc in
                conf.data.withUnsafeBufferPointer { conf in
                    landms.data.withUnsafeBufferPointer { landms in
                        for p in 0..<count {
                            // `conf` is already softmaxed: (background, face).
                            let score = conf[2 * p + 1]
                            if score < options.confidenceThreshold { continue }
                            let pcx = prior[4 * p]
                            let pcy = prior[4 * p + 1]
                            let pw = prior[4 * p + 2]
                            let ph = prior[4 * p + 3]
                            let cx = pcx + loc[4 * p] * v0 * pw
                            let cy = pcy + loc[4 * p + 1] * v0 * ph
                            let w = pw * exp(loc[4 * p + 2] * v1)
                            let h = ph * exp(loc[4 * p + 3] * v1)
                            let box = Box(
                                x: (cx - w / 2) * toImage, y: (cy - h / 2) * toImage, width: w * toImage,
                                height: h * toImage)
                            // The training labels list the eyes and mouth corners in image order
                            // (smaller x first, as ArcFace's template assumes), which is already
                            // DetectedFace's order; the tests check it against YuNet's.
                            var points: [Point] = []
                            points.reserveCapacity(5)
                            for k in 0..<5 {
                                let lx = pcx + landms[10 * p + 2 * k] * v0 * pw
                                let ly = pcy + landms[10 * p + 2 * k + 1] * v0 * ph
                                points.append(Point(x: lx * toImage, y: ly * toImage))
                            }
                            candidates.append(
                                DetectedFace(box: box, score: score, landmarks: points))
                        }
                    }
                }
            }
        }
        return DetectorPostprocessing.finish(
            candidates, imageWidth: imageWidth, imageHeight: imageHeight, options: options)
    }
}
