/// A 2-D similarity transform (uniform scale, rotation, translation):
/// x' = a·x − b·y + tx, y' = b·x + a·y + ty.
public struct SimilarityTransform: Sendable, Equatable {
    public var a: Float
    public var b: Float
    public var tx: Float
    public var ty: Float

    public init(a: Float, b: Float, tx: Float, ty: Float) {
        self.a = a
        self.b = b
        self.tx = tx
        self.ty = ty
    }

    public static let identity = SimilarityTransform(a: 1, b: 0, tx: 0, ty: 0)

    public var scale: Float { (a * a + b * b).squareRoot() }

    public func apply(_ p: Point) -> Point {
        Point(x: a * p.x - b * p.y + tx, y: b * p.x + a * p.y + ty)
    }

    public var inverse: SimilarityTransform {
        let d = a * a + b * b
        let ia = a / d
        let ib = -b / d
        return SimilarityTransform(a: ia, b: ib, tx: -(ia * tx - ib * ty), ty: -(ib * tx + ia * ty))
    }

    /// The least-squares similarity mapping `source` points onto `target` points (Umeyama's
    /// estimate without reflection). In 2-D it has a closed form: treating points as complex
    /// numbers, the rotation-scale is Σ (t − t̄)·conj(s − s̄) / Σ |s − s̄|².
    public static func estimate(from source: [Point], to target: [Point]) -> SimilarityTransform {
        precondition(source.count == target.count && source.count >= 2)
        let n = Float(source.count)
        let sx = source.reduce(0) { $0 + $1.x } / n
        let sy = source.reduce(0) { $0 + $1.y } / n
        let tx = target.reduce(0) { $0 + $1.x } / n
        let ty = target.reduce(0) { $0 + $1.y } / n
        var real: Float = 0
        var imaginary: Float = 0
        var norm: Float = 0
        for (s, t) in zip(source, target) {
            let (px, py) = (s.x - sx, s.y - sy)
            let (qx, qy) = (t.x - tx, t.y - ty)
            // (q) · conj(p) = (qx + i qy)(px − i py)
            real += qx * px + qy * py
            imaginary += qy * px - qx * py
            norm += px * px + py * py
        }
        guard norm > 0 else { return SimilarityTransform(a: 1, b: 0, tx: tx - sx, ty: ty - sy) }
        let a = real / norm
        let b = imaginary / norm
        return SimilarityTransform(a: a, b: b, tx: tx - (a * sx - b * sy), ty: ty - (b * sx + a * sy))
    }
}

/// How pixels outside the source image are filled when warping.
public enum BorderMode: Sendable {
    /// Black, as OpenCV's warpAffine does by default (used for recognition chips).
    case constant
    /// Mirror the image at its edges (used by the liveness crop, which must not see black bars).
    case reflect
}

extension RGBImage {
    /// Samples a `width`×`height` image whose pixel (u, v) comes from `transform.inverse`(u, v) in
    /// this image, with bilinear interpolation.
    public func warped(by transform: SimilarityTransform, width: Int, height: Int, border: BorderMode = .constant)
        -> RGBImage
    {
        let inverse = transform.inverse
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let w = self.width
        let h = self.height
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for v in 0..<height {
                    for u in 0..<width {
                        // Pixel centres map to pixel centres.
                        let p = inverse.apply(Point(x: Float(u), y: Float(v)))
                        let o = (v * width + u) * 3
                        let x0f = p.x.rounded(.down)
                        let y0f = p.y.rounded(.down)
                        let fx = p.x - x0f
                        let fy = p.y - y0f
                        let x0 = Int(x0f)
                        let y0 = Int(y0f)
                        if border == .constant && (x0 < -1 || y0 < -1 || x0 >= w || y0 >= h) { continue }
                        let xs = (Self.borderIndex(x0, w, border), Self.borderIndex(x0 + 1, w, border))
                        let ys = (Self.borderIndex(y0, h, border), Self.borderIndex(y0 + 1, h, border))
                        for c in 0..<3 {
                            func px(_ x: Int, _ y: Int) -> Float {
                                x < 0 || y < 0 ? 0 : Float(src[(y * w + x) * 3 + c])
                            }
                            let top = px(xs.0, ys.0) * (1 - fx) + px(xs.1, ys.0) * fx
                            let bottom = px(xs.0, ys.1) * (1 - fx) + px(xs.1, ys.1) * fx
                            dst[o + c] = UInt8(min(max((top * (1 - fy) + bottom * fy).rounded(), 0), 255))
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

/// Face alignment onto the standard 112×112 recognition template (the ArcFace / SFace layout).
public enum FaceAlignment {
    public static let templateSize = 112
    public static let template: [Point] = [
        Point(x: 38.2946, y: 51.6963), Point(x: 73.5318, y: 51.5014), Point(x: 56.0252, y: 71.7366),
        Point(x: 41.5493, y: 92.3655), Point(x: 70.7299, y: 92.2041),
    ]

    /// The transform from image coordinates onto the template.
    public static func transform(landmarks: [Point]) -> SimilarityTransform {
        SimilarityTransform.estimate(from: landmarks, to: template)
    }

    /// The aligned 112×112 chip of a face.
    public static func chip(_ image: RGBImage, landmarks: [Point]) -> RGBImage {
        image.warped(by: transform(landmarks: landmarks), width: templateSize, height: templateSize)
    }
}
