import Foundation
import Testing

@testable import FaceKit

/// White image with a dark Gaussian blob (σ = `sigma` px) at each point.
private func blobImage(width: Int, height: Int, points: [Point], sigma: Float) -> RGBImage {
    var darkness = [Float](repeating: 0, count: width * height)
    let r = Int((4 * sigma).rounded(.up))
    for p in points {
        let cx = Int(p.x.rounded())
        let cy = Int(p.y.rounded())
        for y in max(0, cy - r)...min(height - 1, cy + r) {
            for x in max(0, cx - r)...min(width - 1, cx + r) {
                let dx = Float(x) - p.x
                let dy = Float(y) - p.y
                darkness[y * width + x] = max(darkness[y * width + x], exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)))
            }
        }
    }
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
        let v = UInt8((255 * (1 - darkness[i])).rounded())
        pixels[3 * i] = v
        pixels[3 * i + 1] = v
        pixels[3 * i + 2] = v
    }
    return RGBImage(width: width, height: height, pixels: pixels)
}

/// Darkness-weighted centroid in a square window around `near`.
private func blobCentre(_ image: RGBImage, near: Point, radius: Int) -> Point {
    var sx: Float = 0
    var sy: Float = 0
    var total: Float = 0
    let cx = Int(near.x.rounded())
    let cy = Int(near.y.rounded())
    for y in max(0, cy - radius)...min(image.height - 1, cy + radius) {
        for x in max(0, cx - radius)...min(image.width - 1, cx + radius) {
            let d = 255 - Float(image.pixels[(y * image.width + x) * 3])
            sx += d * Float(x)
            sy += d * Float(y)
            total += d
        }
    }
    return total > 0 ? Point(x: sx / total, y: sy / total) : near
}

private func distance(_ a: Point, _ b: Point) -> Float { hypot(a.x - b.x, a.y - b.y) }

@Suite("Alignment")
struct AlignmentTests {
    /// A transform with rotation, scale ≠ 1 and translation.
    static let known: SimilarityTransform = {
        let angle: Float = 17 * .pi / 180
        let scale: Float = 0.45
        return SimilarityTransform(a: scale * cos(angle), b: scale * sin(angle), tx: -31.5, ty: -20.25)
    }()

    @Test func estimateRecoversAKnownTransformExactly() {
        let source = [
            Point(x: 210, y: 305), Point(x: 380, y: 290), Point(x: 300, y: 400), Point(x: 230, y: 480),
            Point(x: 370, y: 470),
        ]
        let target = source.map(Self.known.apply)
        let t = SimilarityTransform.estimate(from: source, to: target)
        #expect(abs(t.a - Self.known.a) < 1e-5)
        #expect(abs(t.b - Self.known.b) < 1e-5)
        #expect(abs(t.tx - Self.known.tx) < 1e-3)
        #expect(abs(t.ty - Self.known.ty) < 1e-3)
        // And the inverse undoes it.
        for p in source { #expect(distance(t.inverse.apply(t.apply(p)), p) < 1e-3) }
    }

    @Test func estimateIsLeastSquaresUnderNoise() {
        // Symmetric noise on a square: the best fit is still the exact transform.
        let source = [Point(x: 0, y: 0), Point(x: 10, y: 0), Point(x: 10, y: 10), Point(x: 0, y: 10)]
        var target = source.map(Self.known.apply)
        target[0].x += 0.5
        target[2].x -= 0.5
        let t = SimilarityTransform.estimate(from: source, to: target)
        let residual = zip(source, target).map { distance(t.apply($0), $1) }.reduce(0, +)
        let exactResidual = zip(source, target).map { distance(Self.known.apply($0), $1) }.reduce(0, +)
        #expect(residual <= exactResidual + 1e-4)
    }

    @Test func warpByIntegerTranslationCopiesPixels() {
        var pixels = [UInt8](repeating: 0, count: 20 * 10 * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 37) % 251) }
        let image = RGBImage(width: 20, height: 10, pixels: pixels)
        // Output (u, v) samples input (u + 3, v + 2).
        let shifted = image.warped(by: SimilarityTransform(a: 1, b: 0, tx: -3, ty: -2), width: 12, height: 6)
        for v in 0..<6 {
            for u in 0..<12 {
                for c in 0..<3 {
                    #expect(shifted.pixels[(v * 12 + u) * 3 + c] == image.pixels[((v + 2) * 20 + u + 3) * 3 + c])
                }
            }
        }
        // Outside the source: black with the constant border, mirrored with reflect.
        let outside = image.warped(by: SimilarityTransform(a: 1, b: 0, tx: 5, ty: 0), width: 4, height: 1)
        #expect(outside.pixels.allSatisfy { $0 == 0 })
        let reflected = image.warped(
            by: SimilarityTransform(a: 1, b: 0, tx: 2, ty: 0), width: 4, height: 1, border: .reflect)
        // Output u = 0 samples x = −2, which reflects (without repeating the edge) to x = 2.
        #expect(Array(reflected.pixels[0..<3]) == Array(image.pixels[6..<9]))
    }

    @Test func warpByRotationMovesABlobWhereTheTransformSays() {
        let image = blobImage(width: 200, height: 200, points: [Point(x: 140, y: 60)], sigma: 3)
        let rotation = SimilarityTransform(a: 0, b: 1, tx: 200, ty: 0)  // 90°: (x, y) → (200 − y, x)
        let out = image.warped(by: rotation, width: 200, height: 200)
        let expected = rotation.apply(Point(x: 140, y: 60))
        #expect(distance(blobCentre(out, near: expected, radius: 10), expected) < 0.3)
    }

    @Test func recognitionChipPutsLandmarksOnTheTemplate() {
        // A face twice the chip's scale, rotated 17°: its landmarks are the template mapped back.
        let landmarks = FaceAlignment.template.map(Self.known.inverse.apply)
        let image = blobImage(width: 500, height: 500, points: landmarks, sigma: 2 / Self.known.scale)
        #expect(landmarks.allSatisfy { $0.x > 20 && $0.y > 20 && $0.x < 480 && $0.y < 480 })
        let chip = FaceAlignment.chip(image, landmarks: landmarks)
        #expect(chip.width == 112 && chip.height == 112)
        for point in FaceAlignment.template {
            #expect(distance(blobCentre(chip, near: point, radius: 6), point) < 0.5, "\(point)")
        }
    }

    @Test(arguments: [32, 64]) func attributeChipFollowsDlibsMeanFace(size: Int) {
        let target = AttributeAlignment.target(size: size)
        // dlib's padding: the left eye x is (0.22549 + 0.2) / 1.4 of the size.
        #expect(abs(target[0].x - (0.22549 + 0.2) / 1.4 * Float(size)) < 1e-4)
        #expect(abs(target[4].y - (0.780233 + 0.2) / 1.4 * Float(size)) < 1e-4)
        // A face shrunk ~6× into the chip exercises the supersampled path.
        let toChip = SimilarityTransform(a: 0.16 * cos(0.2), b: 0.16 * sin(0.2), tx: -10, ty: -25)
        let landmarks = target.map(toChip.inverse.apply)
        let sigma = Float(size) / 40  // about 1.6 chip px at 64, 0.8 at 32
        let image = blobImage(width: 1000, height: 1000, points: landmarks, sigma: sigma / 0.16)
        let chip = AttributeAlignment.chip(image, landmarks: landmarks, size: size)
        #expect(chip.width == size && chip.height == size)
        for point in target {
            #expect(distance(blobCentre(chip, near: point, radius: max(2, size / 16)), point) < 0.35, "\(point)")
        }
    }

    @Test func boxDownsampleAverages() {
        let image = RGBImage(width: 2, height: 2, pixels: [0, 0, 0, 10, 20, 30, 20, 40, 60, 30, 60, 90])
        #expect(image.boxDownsampled(by: 2).pixels == [15, 30, 45])
    }
}
