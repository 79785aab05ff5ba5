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

extension RGBImage {
    /// A box blur of the given radius (a (2r+1)² mean), edges clamped.
    public func boxBlurred(radius r: Int) -> RGBImage {
        guard r > 0 else { return self }
        // Two passes of a running sum: rows, then columns.
        var horizontal = [UInt8](repeating: 0, count: pixels.count)
        let span = Float(2 * r + 1)
        for y in 0..<height {
            for c in 0..<3 {
                var sum = 0
                for k in -r...r { sum += Int(pixels[(y * width + min(max(k, 0), width - 1)) * 3 + c]) }
                for x in 0..<width {
                    horizontal[(y * width + x) * 3 + c] = UInt8((Float(sum) / span).rounded())
                    let out = min(max(x - r, 0), width - 1)
                    let into = min(max(x + r + 1, 0), width - 1)
                    sum += Int(pixels[(y * width + into) * 3 + c]) - Int(pixels[(y * width + out) * 3 + c])
                }
            }
        }
        var out = [UInt8](repeating: 0, count: pixels.count)
        for x in 0..<width {
            for c in 0..<3 {
                var sum = 0
                for k in -r...r { sum += Int(horizontal[(min(max(k, 0), height - 1) * width + x) * 3 + c]) }
                for y in 0..<height {
                    out[(y * width + x) * 3 + c] = UInt8((Float(sum) / span).rounded())
                    let leaving = min(max(y - r, 0), height - 1)
                    let entering = min(max(y + r + 1, 0), height - 1)
                    sum +=
                        Int(horizontal[(entering * width + x) * 3 + c]) - Int(horizontal[(leaving * width + x) * 3 + c])
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The image scaled by `factor` (bilinear, after a box blur of about 1/factor when shrinking,
    /// so a smaller copy looks like a smaller photo rather than an aliased one).
    public func scaled(by factor: Float) -> RGBImage {
        let w = max(1, Int((Float(width) * factor).rounded()))
        let h = max(1, Int((Float(height) * factor).rounded()))
        let source = factor < 0.5 ? boxBlurred(radius: Int((0.5 / factor).rounded(.down))) : self
        let scale = SimilarityTransform(a: factor, b: 0, tx: 0.5 * factor - 0.5, ty: 0.5 * factor - 0.5)
        return source.warped(by: scale, width: w, height: h, border: .reflect)
    }

    /// The part of the image from column `x` on (a face there is cut by the new left edge).
    public func cropped(fromColumn x: Int) -> RGBImage {
        let x0 = min(max(0, x), width - 1)
        var out: [UInt8] = []
        out.reserveCapacity((width - x0) * height * 3)
        for y in 0..<height { out.append(contentsOf: pixels[((y * width + x0) * 3)..<((y + 1) * width * 3)]) }
        return RGBImage(width: width - x0, height: height, pixels: out)
    }
}
