import Foundation

/// Edits the benchmarks and tests make degraded or turned copies of a photo with (the server
/// never changes an upload but through the EXIF orientation).
extension RGBImage {
    /// The image mirrored left to right.
    public func mirrored() -> RGBImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                let from = (y * width + (width - 1 - x)) * 3
                let to = (y * width + x) * 3
                out[to] = pixels[from]
                out[to + 1] = pixels[from + 1]
                out[to + 2] = pixels[from + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The image turned by `degrees` about its centre (positive: clockwise on screen), same size,
    /// the corners black (a reflected border would add mirrored copies of the faces).
    public func rotated(degrees: Float) -> RGBImage {
        let angle = degrees * .pi / 180
        let (cx, cy) = (Float(width - 1) / 2, Float(height - 1) / 2)
        let (a, b) = (cos(angle), sin(angle))
        // x' = a·(x − cx) − b·(y − cy) + cx, y' = b·(x − cx) + a·(y − cy) + cy: with y pointing
        // down, a positive angle turns clockwise as seen on screen.
        let turn = SimilarityTransform(a: a, b: b, tx: cx - a * cx + b * cy, ty: cy - b * cx - a * cy)
        return warped(by: turn, width: width, height: height, border: .constant)
    }

    /// Every channel times `factor`, clamped to 0…255.
    public func brightness(_ factor: Float) -> RGBImage {
        RGBImage(
            width: width, height: height, pixels: pixels.map { UInt8(max(0, min(255, (Float($0) * factor).rounded()))) }
        )
    }
}
