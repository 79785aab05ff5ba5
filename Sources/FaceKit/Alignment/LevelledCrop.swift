import Foundation

/// A square crop around a face box, turned so the eyes are level: what the face mesh and the
/// emotion network see. Turning by the eye line also brings a face found in a turned copy of the
/// photo (`OrientationSearch`) upright.
public struct LevelledCrop: Sendable {
    /// The crop's side in pixels.
    public var size: Int
    /// The crop's side as a multiple of the box's longer side.
    public var expansion: Float
    public var border: BorderMode

    public init(size: Int, expansion: Float, border: BorderMode) {
        self.size = size
        self.expansion = expansion
        self.border = border
    }

    /// The transform from image coordinates onto the crop (continuous coordinates, pixel i covers
    /// [i, i+1)): the box centre to the crop's middle, the eye line level.
    public func transform(face: DetectedFace) -> SimilarityTransform {
        let side = max(face.box.width, face.box.height) * expansion
        let s = Float(size) / max(side, 1)
        var angle: Float = 0
        if face.landmarks.count >= 2 {
            let dx = face.landmarks[1].x - face.landmarks[0].x
            let dy = face.landmarks[1].y - face.landmarks[0].y
            if dx * dx + dy * dy > 0 { angle = atan2(dy, dx) }
        }
        // Rotate by −angle about the box centre, scale, and put the centre in the crop's middle.
        let a = s * cos(angle)
        let b = -s * sin(angle)
        let c = face.box.center
        let half = Float(size) / 2
        return SimilarityTransform(a: a, b: b, tx: half - (a * c.x - b * c.y), ty: half - (b * c.x + a * c.y))
    }

    /// The crop. When the face is shrunk by 2× or more it is sampled at up to 4× and
    /// box-averaged, so large faces do not alias.
    public func crop(_ image: RGBImage, transform t: SimilarityTransform) -> RGBImage {
        // `warped` maps pixel centres (integer coordinates); shift by half a pixel on both sides.
        func centred(_ t: SimilarityTransform) -> SimilarityTransform {
            SimilarityTransform(a: t.a, b: t.b, tx: t.tx + 0.5 * (t.a - t.b) - 0.5, ty: t.ty + 0.5 * (t.b + t.a) - 0.5)
        }
        let shrink = t.scale > 0 ? 1 / t.scale : 1
        let k = min(4, max(1, Int(shrink.rounded(.down))))
        guard k > 1 else { return image.warped(by: centred(t), width: size, height: size, border: border) }
        let kf = Float(k)
        let big = SimilarityTransform(a: t.a * kf, b: t.b * kf, tx: t.tx * kf, ty: t.ty * kf)
        return image.warped(by: centred(big), width: size * k, height: size * k, border: border)
            .boxDownsampled(by: k)
    }

    public func crop(_ image: RGBImage, face: DetectedFace) -> RGBImage {
        crop(image, transform: transform(face: face))
    }
}
