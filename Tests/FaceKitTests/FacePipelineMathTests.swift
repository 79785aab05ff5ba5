import Foundation
import Testing

@testable import FaceKit

/// A runner returning canned outputs, checking what it was given.
private struct CheckingRunner: TensorRunner {
    let expectedInput: String
    let expectedShape: [Int]
    let outputs: [String: Tensor]
    func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        #expect(inputs.keys.sorted() == [expectedInput])
        #expect(inputs[expectedInput]?.shape == expectedShape)
        return outputs
    }
}

@Suite("Embedding math and attribute postprocessing")
struct FacePipelineMathTests {
    @Test func cosineAndNormalisation() {
        let a: [Float] = [3, 4, 0]
        #expect(abs(EmbeddingMath.cosine(a, a) - 1) < 1e-6)
        #expect(abs(EmbeddingMath.cosine(a, [-3, -4, 0]) + 1) < 1e-6)
        #expect(abs(EmbeddingMath.cosine(a, [0, 0, 5])) < 1e-6)
        #expect(EmbeddingMath.cosine(a, [1, 2]) == 0)
        #expect(EmbeddingMath.cosine(a, [0, 0, 0]) == 0)
        let n = EmbeddingMath.normalized(a)
        #expect(abs(n[0] - 0.6) < 1e-6 && abs(n[1] - 0.8) < 1e-6)
        #expect(EmbeddingMath.normalized([0, 0]) == [0, 0])
    }

    @Test func sfaceFeedsRawRGBAndNormalisesFc1() async throws {
        let chip = RGBImage(width: 112, height: 112, fill: 200)
        let tensor = FaceRecognizer.sface.preprocess(chip: chip)
        #expect(tensor.shape == [1, 3, 112, 112])
        #expect(tensor.data.allSatisfy { $0 == 200 })
        let raw = (0..<128).map { Float($0 % 7) - 3 }
        let runner = CheckingRunner(
            expectedInput: "data", expectedShape: [1, 3, 112, 112],
            outputs: ["fc1": Tensor(shape: [1, 128], data: raw)])
        let embedding = try await FaceRecognizer.sface.embed(chip: chip, runner: runner)
        #expect(embedding.count == 128)
        #expect(abs(embedding.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        #expect(abs(EmbeddingMath.cosine(embedding, raw) - 1) < 1e-5)
        let wrong = CheckingRunner(
            expectedInput: "data", expectedShape: [1, 3, 112, 112], outputs: ["other": Tensor(zeros: [1, 128])])
        await #expect(throws: DetectorError.self) { try await FaceRecognizer.sface.embed(chip: chip, runner: wrong) }
    }

    /// w600k_mbf maps 0…255 onto −1…1 and answers 512 numbers under `516`; a 128-d answer is refused.
    @Test func w600kFeedsMinusOneToOneAndNormalises() async throws {
        let w600k = FaceRecognizer.w600kMBF
        #expect(w600k.normalization.rangeText == "-1..1")
        let dark = w600k.preprocess(chip: RGBImage(width: 112, height: 112, fill: 0))
        let bright = w600k.preprocess(chip: RGBImage(width: 112, height: 112, fill: 255))
        #expect(dark.data.allSatisfy { abs($0 + 1) < 1e-6 } && bright.data.allSatisfy { abs($0 - 1) < 1e-6 })
        let raw = (0..<512).map { Float($0 % 11) - 5 }
        let runner = CheckingRunner(
            expectedInput: "input.1", expectedShape: [1, 3, 112, 112],
            outputs: ["516": Tensor(shape: [1, 512], data: raw)])
        let embedding = try await w600k.embed(chip: RGBImage(width: 112, height: 112, fill: 90), runner: runner)
        #expect(embedding.count == 512 && abs(EmbeddingMath.cosine(embedding, raw) - 1) < 1e-5)
        let short = CheckingRunner(
            expectedInput: "input.1", expectedShape: [1, 3, 112, 112], outputs: ["516": Tensor(zeros: [1, 128])])
        await #expect(throws: DetectorError.self) {
            try await w600k.embed(chip: RGBImage(width: 112, height: 112, fill: 90), runner: short)
        }
    }

    @Test func attributeNormalisation() {
        let chip = RGBImage(
            width: 32, height: 32,
            pixels: [UInt8](repeating: 0, count: 32 * 32 * 3).enumerated().map {
                [UInt8(122), 117, 104][$0.offset % 3]
            })
        let t = GenderClassifier().preprocess(chip: chip)
        #expect(t.shape == [1, 3, 32, 32])
        #expect(abs(t.data[0] - (122 - 122.782) / 256) < 1e-6)  // R plane first
        #expect(abs(t.data[32 * 32] - (117 - 117.001) / 256) < 1e-6)
        #expect(abs(t.data[2 * 32 * 32] - (104 - 104.298) / 256) < 1e-6)
    }

    @Test func ageSummaryIsTheExpectedValueWithA10To90Range() {
        #expect(AgeEstimator.ages.count == 81)
        #expect(AgeEstimator.ages[0] == 0.25 && AgeEstimator.ages[1] == 1 && AgeEstimator.ages[80] == 80)
        var oneHot = [Float](repeating: 0, count: 81)
        oneHot[40] = 1  // age 40
        let sharp = AgeEstimator.summarize(oneHot)
        #expect(sharp.value == 40)
        // The bin's mass spans 39.5…40.5, so the 10–90 % range is 39.6…40.4, around 40.
        #expect(abs(sharp.low - 39.6) < 1e-3 && abs(sharp.high - 40.4) < 1e-3)
        // Half at 30, half at 50: the mean is 40 and the range spans both modes.
        var twoModes = [Float](repeating: 0, count: 81)
        twoModes[30] = 0.5
        twoModes[50] = 0.5
        let wide = AgeEstimator.summarize(twoModes)
        #expect(abs(wide.value - 40) < 1e-4)
        #expect(wide.low < 31 && wide.high > 49)
        let uniform = AgeEstimator.summarize([Float](repeating: 1, count: 81))
        #expect(uniform.low < uniform.value && uniform.value < uniform.high)
        // A sharp peak with a far tail: the mean (45.04) lies above the 90th percentile (≈ 42.4),
        // and the range is widened to hold it (seen on a real photo: 41.6 ≤ 42.6 ≤ 42.4 before).
        var tail = [Float](repeating: 0, count: 81)
        tail[42] = 0.92
        tail[80] = 0.08
        let skewed = AgeEstimator.summarize(tail)
        #expect(abs(skewed.value - 45.04) < 1e-3)
        #expect(abs(skewed.low - 41.6087) < 1e-3 && skewed.high == skewed.value)
    }

    @Test func postprocessHandlesBatchesAndBadShapes() throws {
        var rows = [Float](repeating: 0, count: 162)
        rows[20] = 1
        rows[81 + 60] = 1
        let ages = try AgeEstimator().postprocess(["probabilities": Tensor(shape: [2, 81], data: rows)])
        #expect(ages.map(\.value) == [20, 60])
        #expect(throws: DetectorError.self) {
            try AgeEstimator().postprocess(["probabilities": Tensor(zeros: [1, 80])])
        }
        let genders = try GenderClassifier().postprocess([
            "probabilities": Tensor(shape: [2, 2], data: [0.9, 0.1, 0.2, 0.8])
        ])
        #expect(genders.map(\.value) == ["female", "male"])
        #expect(abs(genders[0].confidence - 0.9) < 1e-6 && abs(genders[1].confidence - 0.8) < 1e-6)
    }
}

@Suite("Face quality")
struct FaceQualityTests {
    /// A face-like test card: smooth shading plus fine texture, landmarks on the template scaled ×2.
    static func card() -> (RGBImage, DetectedFace) {
        let size = 224
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        var seed: UInt32 = 12345
        for y in 0..<size {
            for x in 0..<size {
                seed = seed &* 1_664_525 &+ 1_013_904_223
                let noise = Float(seed >> 24) / 255 - 0.5
                let v = 120 + 40 * sin(Float(x) / 9) * cos(Float(y) / 13) + 50 * noise
                let g = UInt8(min(max(v, 0), 255))
                let i = (y * size + x) * 3
                pixels[i] = g
                pixels[i + 1] = g
                pixels[i + 2] = g
            }
        }
        let landmarks = FaceAlignment.template.map { Point(x: $0.x * 2, y: $0.y * 2) }
        let face = DetectedFace(box: Box(x: 20, y: 20, width: 184, height: 190), score: 0.99, landmarks: landmarks)
        return (RGBImage(width: size, height: size, pixels: pixels), face)
    }

    @Test func blurLowersSharpnessAndScore() {
        let (image, face) = Self.card()
        let sharp = FaceQualityAssessor.assess(image: image, face: face)
        let blurred = FaceQualityAssessor.assess(image: image.boxBlurred(radius: 3), face: face)
        #expect(sharp.sharpness > 10 * blurred.sharpness, "\(sharp.sharpness) vs \(blurred.sharpness)")
        #expect(sharp.score > blurred.score)
        #expect(sharp.parts["sharpness"]! > blurred.parts["sharpness"]!)
        #expect(abs(sharp.yaw) < 2 && abs(sharp.roll) < 1)
        #expect(sharp.parts["size"] == 1 && sharp.size == 184)
        #expect(sharp.brightness > 100 && sharp.brightness < 140)
        #expect(Set(sharp.parts.keys) == ["size", "sharpness", "pose", "brightness"])
        #expect(sharp.score > 0 && sharp.score <= 1)
    }

    @Test func darkAndTinyFacesScoreLow() {
        let (image, face) = Self.card()
        let dark = RGBImage(width: image.width, height: image.height, pixels: image.pixels.map { $0 / 16 })
        let q = FaceQualityAssessor.assess(image: dark, face: face)
        #expect(q.parts["brightness"]! < 0.1)
        var tiny = face
        tiny.box = Box(x: 0, y: 0, width: 30, height: 36)
        #expect(FaceQualityAssessor.assess(image: image, face: tiny).score == 0)
    }

    @Test func rollAndYawFollowTheLandmarks() {
        let template = FaceAlignment.template
        // Rotate the template by 20° clockwise on screen (y down).
        let angle: Float = 20 * .pi / 180
        let rotate = SimilarityTransform(a: cos(angle), b: sin(angle), tx: 0, ty: 0)
        let rolled = DetectedFace(
            box: Box(x: 0, y: 0, width: 100, height: 100), score: 1, landmarks: template.map(rotate.apply))
        #expect(abs(rolled.roll - 20) < 0.5)
        #expect(abs(rolled.yaw) < 3, "rotation alone is not yaw: \(rolled.yaw)")
        // Move the nose towards larger x by a quarter of the eye distance: positive yaw near
        // atan(0.5) ≈ 26.6°; the other way, negative.
        var turned = template
        turned[2].x += 0.25 * (template[1].x - template[0].x)
        let right = DetectedFace(box: Box(x: 0, y: 0, width: 100, height: 100), score: 1, landmarks: turned)
        #expect(right.yaw > 20 && right.yaw < 32, "\(right.yaw)")
        turned[2].x -= 0.5 * (template[1].x - template[0].x)
        #expect(DetectedFace(box: right.box, score: 1, landmarks: turned).yaw < -20)
        #expect(FaceQualityAssessor.poseScore(yaw: 0, roll: 0) == 1)
        #expect(FaceQualityAssessor.poseScore(yaw: 30, roll: 0) > FaceQualityAssessor.poseScore(yaw: 45, roll: 0))
        #expect(FaceQualityAssessor.poseScore(yaw: 60, roll: 0) == 0)
        #expect(FaceQualityAssessor.poseScore(yaw: 0, roll: 45) == 0)
    }

    @Test func subscoreCurves() {
        #expect(FaceQualityAssessor.sizeScore(20) == 0)
        #expect(FaceQualityAssessor.sizeScore(72) == 0.5)
        #expect(FaceQualityAssessor.sizeScore(400) == 1)
        #expect(FaceQualityAssessor.brightnessScore(128) == 1)
        #expect(FaceQualityAssessor.brightnessScore(5) == 0 && FaceQualityAssessor.brightnessScore(250) == 0)
        #expect(FaceQualityAssessor.combine(["size": 1, "sharpness": 1, "pose": 1, "brightness": 1]) == 1)
        #expect(FaceQualityAssessor.combine(["size": 1, "sharpness": 0, "pose": 1, "brightness": 1]) == 0)
        let mixed = FaceQualityAssessor.combine(["size": 1, "sharpness": 0.25, "pose": 1, "brightness": 1])
        #expect(abs(mixed - pow(0.25, 0.3)) < 1e-5)
    }
}

extension RGBImage {
    /// A (2r+1)² box blur with edge clamping, for making blurred copies in tests.
    fileprivate func boxBlurred(radius r: Int) -> RGBImage {
        var out = pixels
        let n = (2 * r + 1) * (2 * r + 1)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    var sum = 0
                    for dy in -r...r {
                        for dx in -r...r {
                            let sx = min(max(x + dx, 0), width - 1)
                            let sy = min(max(y + dy, 0), height - 1)
                            sum += Int(pixels[(sy * width + sx) * 3 + c])
                        }
                    }
                    out[(y * width + x) * 3 + c] = UInt8(sum / n)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
