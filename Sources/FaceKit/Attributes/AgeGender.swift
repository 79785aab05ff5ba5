/// Age and gender networks (Cydral, via dlib-models). They were trained on dlib face chips
/// (`get_face_chip_details`, padding 0.2), and the chip geometry matters more than anything else
/// here: an ArcFace-style chip makes adults look ~20 years younger and flips genders. So these
/// chips map the five detector landmarks onto dlib's mean face instead.
public enum AttributeAlignment {
    /// dlib's mean face at the five points the detectors give, normalised (x right, y down), in
    /// the detectors' order: the eye with the smaller x, the other eye, nose tip, mouth corners.
    public static let meanFace: [Point] = [
        Point(x: 0.22549, y: 0.21599), Point(x: 0.75476, y: 0.21599), Point(x: 0.490127, y: 0.515625),
        Point(x: 0.254149, y: 0.780233), Point(x: 0.726104, y: 0.780233),
    ]
    /// dlib's padding: the mean face occupies the middle 1 / 1.4 of the chip.
    public static let padding: Float = 0.2

    /// The mean face in pixel coordinates of a `size`×`size` chip: (c + 0.2) / 1.4 × size.
    public static func target(size: Int) -> [Point] {
        let s = Float(size) / (1 + 2 * padding)
        return meanFace.map { Point(x: ($0.x + padding) * s, y: ($0.y + padding) * s) }
    }

    /// The similarity transform from image coordinates onto the chip.
    public static func transform(landmarks: [Point], size: Int) -> SimilarityTransform {
        SimilarityTransform.estimate(from: landmarks, to: target(size: size))
    }

    /// The `size`×`size` attribute chip. These chips are small (32 or 64 px) while faces are often
    /// hundreds of pixels wide, and plain bilinear sampling would alias; so when the face is
    /// shrunk by more than 2× the chip is warped at up to 4× its size and box-averaged down,
    /// which is close to dlib's own pyramid-then-bilinear extraction.
    public static func chip(_ image: RGBImage, landmarks: [Point], size: Int) -> RGBImage {
        let t = transform(landmarks: landmarks, size: size)
        let shrink = t.scale > 0 ? 1 / t.scale : 1
        let k = min(4, max(1, Int(shrink.rounded(.down))))
        guard k > 1 else { return image.warped(by: t, width: size, height: size) }
        // Big pixel U covers chip coordinate (U + 0.5) / k − 0.5, so big = k·chip + (k − 1) / 2.
        let kf = Float(k)
        let offset = (kf - 1) / 2
        let big = SimilarityTransform(a: t.a * kf, b: t.b * kf, tx: t.tx * kf + offset, ty: t.ty * kf + offset)
        return image.warped(by: big, width: size * k, height: size * k).boxDownsampled(by: k)
    }

    /// The networks' input: RGB, (x − mean) / 256.
    public static let normalization = Normalization(
        mean: (122.782, 117.001, 104.298), scale: (1 / 256, 1 / 256, 1 / 256))
}

extension RGBImage {
    /// Averages each k×k block into one pixel (width and height must be multiples of k).
    func boxDownsampled(by k: Int) -> RGBImage {
        precondition(k >= 1 && width % k == 0 && height % k == 0)
        let ow = width / k
        let oh = height / k
        let w = width
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        let area = k * k
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = (0, 0, 0)
                        for y in (oy * k)..<(oy * k + k) {
                            var i = (y * w + ox * k) * 3
                            for _ in 0..<k {
                                sum.0 += Int(src[i])
                                sum.1 += Int(src[i + 1])
                                sum.2 += Int(src[i + 2])
                                i += 3
                            }
                        }
                        let o = (oy * ow + ox) * 3
                        dst[o] = UInt8((sum.0 + area / 2) / area)
                        dst[o + 1] = UInt8((sum.1 + area / 2) / area)
                        dst[o + 2] = UInt8((sum.2 + area / 2) / area)
                    }
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}

/// An age estimate in years.
public struct AgeEstimate: Sendable, Codable, Equatable {
    /// The expected value of the predicted distribution.
    public var value: Float
    /// The 10th and 90th percentiles of the predicted distribution (interpolated within bins): an
    /// 80 % range that widens when the network is unsure, which ±1 std of a skewed distribution
    /// near age 0 or 80 would misrepresent. Widened to include `value` when a far tail pulls the
    /// expected value outside them, so that low ≤ value ≤ high always holds.
    public var low: Float
    public var high: Float

    public init(value: Float, low: Float, high: Float) {
        self.value = value
        self.low = low
        self.high = high
    }
}

/// A gender classification: "male" or "female" with the softmax probability of that class.
public struct GenderEstimate: Sendable, Codable, Equatable {
    public var value: String
    public var confidence: Float

    public init(value: String, confidence: Float) {
        self.value = value
        self.confidence = confidence
    }
}

/// The age network: a 64×64 chip in, a softmax over 81 ages (0.25, 1, 2, …, 80) out.
public struct AgeEstimator: Sendable {
    public static let inputName = "images"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .rgb
    public static let outputName = "probabilities"
    public static let inputSize = 64
    public static let normalization = AttributeAlignment.normalization
    /// The age of each output bin.
    public static let ages: [Float] = [0.25] + (1...80).map(Float.init)

    public init() {}

    public func chip(_ image: RGBImage, landmarks: [Point]) -> RGBImage {
        AttributeAlignment.chip(image, landmarks: landmarks, size: Self.inputSize)
    }

    public func preprocess(chip: RGBImage) -> Tensor {
        precondition(
            chip.width == Self.inputSize && chip.height == Self.inputSize, "the age network needs a 64×64 chip")
        return Preprocessing.planar(chip, order: Self.channelOrder, normalization: Self.normalization)
    }

    /// One estimate per batch row.
    public func postprocess(_ outputs: [String: Tensor]) throws -> [AgeEstimate] {
        guard let p = outputs[Self.outputName] else { throw DetectorError.missingOutput("age \(Self.outputName)") }
        let bins = Self.ages.count
        guard p.count > 0, p.count % bins == 0 else {
            throw DetectorError.unexpectedShape("age \(Self.outputName) \(p.shape)")
        }
        return (0..<(p.count / bins)).map { Self.summarize(Array(p.data[($0 * bins)..<(($0 + 1) * bins)])) }
    }

    /// Expected value and 10th–90th percentile range of a distribution over `ages`.
    public static func summarize(_ probabilities: [Float]) -> AgeEstimate {
        precondition(probabilities.count == ages.count)
        // Renormalise: the graph's softmax sums to 1 only up to rounding.
        let total = probabilities.reduce(0) { $0 + max($1, 0) }
        guard total > 0 else { return AgeEstimate(value: 0, low: 0, high: 0) }
        let p = probabilities.map { max($0, 0) / total }
        let mean = zip(p, ages).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        // Each bin's mass is spread evenly between the midpoints to its neighbours (0 below the
        // first bin, 80.5 above the last), so a distribution peaked on one age gets a range
        // around that age rather than beside it.
        func edge(_ i: Int) -> Float {
            if i == 0 { return 0 }
            if i == ages.count { return ages[ages.count - 1] + 0.5 }
            return (ages[i - 1] + ages[i]) / 2
        }
        func percentile(_ q: Float) -> Float {
            var cdf: Float = 0
            for i in p.indices {
                let next = cdf + p[i]
                if next >= q, p[i] > 0 {
                    return edge(i) + (edge(i + 1) - edge(i)) * (q - cdf) / p[i]
                }
                cdf = next
            }
            return edge(ages.count)
        }
        // A sharp peak with a far tail (92 % at 42, 8 % at 80) puts the mean above the 90th
        // percentile: the range is widened to hold the estimate it is reported with.
        return AgeEstimate(value: mean, low: min(percentile(0.1), mean), high: max(percentile(0.9), mean))
    }

    public func estimate(chip: RGBImage, runner: any TensorRunner) async throws -> AgeEstimate {
        let outputs = try await runner.run([Self.inputName: preprocess(chip: chip)])
        guard let first = try postprocess(outputs).first else {
            throw DetectorError.unexpectedShape("age: empty output")
        }
        return first
    }

    public func estimate(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws -> AgeEstimate {
        try await estimate(chip: chip(image, landmarks: face.landmarks), runner: runner)
    }
}

/// The gender network: a 32×32 chip in, softmax (female, male) out.
public struct GenderClassifier: Sendable {
    public static let inputName = "images"
    /// The channel order the network was trained on (the manifest's `input.color`).
    public static let channelOrder: ChannelOrder = .rgb
    public static let outputName = "probabilities"
    public static let inputSize = 32
    public static let normalization = AttributeAlignment.normalization
    public static let labels = ["female", "male"]

    public init() {}

    public func chip(_ image: RGBImage, landmarks: [Point]) -> RGBImage {
        AttributeAlignment.chip(image, landmarks: landmarks, size: Self.inputSize)
    }

    public func preprocess(chip: RGBImage) -> Tensor {
        precondition(
            chip.width == Self.inputSize && chip.height == Self.inputSize, "the gender network needs a 32×32 chip")
        return Preprocessing.planar(chip, order: Self.channelOrder, normalization: Self.normalization)
    }

    /// One estimate per batch row.
    public func postprocess(_ outputs: [String: Tensor]) throws -> [GenderEstimate] {
        guard let p = outputs[Self.outputName] else { throw DetectorError.missingOutput("gender \(Self.outputName)") }
        guard p.count > 0, p.count % 2 == 0 else {
            throw DetectorError.unexpectedShape("gender \(Self.outputName) \(p.shape)")
        }
        return (0..<(p.count / 2)).map { row in
            let female = p.data[2 * row]
            let male = p.data[2 * row + 1]
            let total = female + male
            let maleShare = total > 0 ? male / total : 0.5
            return maleShare >= 0.5
                ? GenderEstimate(value: Self.labels[1], confidence: maleShare)
                : GenderEstimate(value: Self.labels[0], confidence: 1 - maleShare)
        }
    }

    public func classify(chip: RGBImage, runner: any TensorRunner) async throws -> GenderEstimate {
        let outputs = try await runner.run([Self.inputName: preprocess(chip: chip)])
        guard let first = try postprocess(outputs).first else {
            throw DetectorError.unexpectedShape("gender: empty output")
        }
        return first
    }

    public func classify(_ image: RGBImage, face: DetectedFace, runner: any TensorRunner) async throws -> GenderEstimate
    {
        try await classify(chip: chip(image, landmarks: face.landmarks), runner: runner)
    }
}
