import Foundation
import Testing

@testable import FaceKit

/// A runner that returns canned outputs and records what it was given.
private final class RecordingRunner: TensorRunner, @unchecked Sendable {
    let outputs: [String: Tensor]
    private let lock = NSLock()
    private var _inputs: [String: Tensor] = [:]
    var inputs: [String: Tensor] { lock.withLock { _inputs } }

    init(_ outputs: [String: Tensor]) { self.outputs = outputs }

    func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        lock.withLock { _inputs = inputs }
        return outputs
    }
}

@Suite("RetinaFace decoding")
struct RetinaFaceMathTests {
    @Test func priorsCoverEveryCellOfEveryStride() {
        let priors = RetinaFace.priors()
        #expect(priors.count / 4 == 16_800)  // (80² + 40² + 20²) × 2
        // First cell of stride 8: both min sizes at the same centre.
        let first: [Float] = [4, 4, 16, 16, 4, 4, 32, 32].map { $0 / 640 }
        #expect(Array(priors[0..<8]) == first)
        // Prior 2 is row 0, column 1; prior 160 is row 1, column 0.
        #expect(priors[8] == 12 / 640 && priors[9] == 4 / 640)
        #expect(priors[160 * 4] == 4 / 640 && priors[160 * 4 + 1] == 12 / 640)
        // The first stride-16 prior comes after 12,800 stride-8 priors.
        let stride16: [Float] = [8, 8, 64, 64].map { $0 / 640 }
        #expect(Array(priors[(12_800 * 4)..<(12_800 * 4 + 4)]) == stride16)
        // ceil: a size that is not a multiple of 32 still gets a partial last cell.
        #expect(RetinaFace.priors(width: 650, height: 640).count / 4 == (82 * 80 + 41 * 40 + 21 * 20) * 2)
    }

    @Test func decodesOffsetsWithVariancesAndUndoesTheLetterbox() throws {
        let p = 16_800
        var loc = [Float](repeating: 0, count: p * 4)
        var conf = [Float](repeating: 0, count: p * 2)
        var landmarks = [Float](repeating: 0, count: p * 10)
        for i in 0..<p { conf[2 * i] = 1 }
        // Stride-16 prior at row 10, column 20, min size 128: centre (328, 168), size 128.
        let index = 12_800 + (10 * 40 + 20) * 2 + 1
        conf[2 * index] = 0.1
        conf[2 * index + 1] = 0.9
        loc[4 * index] = 1  // cx += 1 × 0.1 × 128 = 12.8
        loc[4 * index + 2] = log(2) / 0.2  // width doubles
        for k in 0..<5 {
            landmarks[10 * index + 2 * k] = Float(k - 2)  // x offsets −2…2 × 12.8
            landmarks[10 * index + 2 * k + 1] = 0
        }
        let outputs = [
            "loc": Tensor(shape: [1, p, 4], data: loc), "conf": Tensor(shape: [1, p, 2], data: conf),
            "landmarks": Tensor(shape: [1, p, 10], data: landmarks),
        ]
        // A 1280×1280 image letterboxed at scale 0.5.
        let geometry = LetterboxGeometry(
            scale: 0.5, contentWidth: 640, contentHeight: 640, canvasWidth: 640, canvasHeight: 640)
        let faces = try RetinaFace().postprocess(
            outputs, geometry: geometry, imageWidth: 1280, imageHeight: 1280, options: DetectionOptions())
        try #require(faces.count == 1)
        let face = faces[0]
        #expect(face.score == 0.9)
        #expect(abs(face.box.center.x - 2 * (328 + 12.8)) < 1e-2)
        #expect(abs(face.box.center.y - 2 * 168) < 1e-2)
        #expect(abs(face.box.width - 2 * 256) < 1e-2 && abs(face.box.height - 2 * 128) < 1e-2)
        for k in 0..<5 {
            #expect(abs(face.landmarks[k].x - 2 * (328 + Float(k - 2) * 12.8)) < 1e-2)
            #expect(abs(face.landmarks[k].y - 2 * 168) < 1e-2)
        }
        // Below the threshold nothing comes back; a wrong prior count is an error, not a guess.
        var strict = DetectionOptions()
        strict.confidenceThreshold = 0.95
        #expect(
            try RetinaFace().postprocess(
                outputs, geometry: geometry, imageWidth: 1280, imageHeight: 1280, options: strict
            )
            .isEmpty)
        var short = outputs
        short["conf"] = Tensor(shape: [1, 10, 2], data: [Float](repeating: 0, count: 20))
        #expect(throws: DetectorError.self) {
            try RetinaFace().postprocess(
                short, geometry: geometry, imageWidth: 1280, imageHeight: 1280, options: .init())
        }
    }

    @Test func preprocessIsBGRMinusTheMeans() {
        let image = RGBImage(width: 2, height: 1, pixels: [200, 100, 50, 200, 100, 50])
        let (tensor, geometry) = RetinaFace().preprocess(image)
        #expect(tensor.shape == [1, 3, 640, 640])
        #expect(geometry.scale == 320)
        let plane = 640 * 640
        #expect(tensor.data[0] == 50 - 104 && tensor.data[plane] == 100 - 117 && tensor.data[2 * plane] == 200 - 123)
        #expect(tensor.data[plane - 1] == 0)  // padding stays at zero (the mean colour)
    }
}

/// A YuNet runner that says it takes image-shaped inputs but refuses all but the square, as a
/// session that moved to an engine with only the declared shape would.
private final class SquareOnlyRunner: TensorRunner, @unchecked Sendable {
    private struct Refused: RunnerInputError {}
    private let lock = NSLock()
    private var _shapes: [[Int]] = []
    var shapes: [[Int]] { lock.withLock { _shapes } }
    var flexibleSizeMultiple: Int? { 32 }

    func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        let shape = inputs[YuNet.inputName]!.shape
        lock.withLock { _shapes.append(shape) }
        guard shape == [1, 3, 640, 640] else { throw Refused() }
        var outputs: [String: Tensor] = [:]
        for stride in YuNet.strides {
            let cells = (640 / stride) * (640 / stride)
            for (head, width) in [("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)] {
                outputs["\(head)_\(stride)"] = Tensor(
                    shape: [1, cells, width], data: [Float](repeating: 0, count: cells * width))
            }
        }
        return outputs
    }
}

@Suite("YuNet's input size")
struct YuNetInputSizeTests {
    @Test func theImagesAspectAtTheSquaresScaleInStepsOfThirtyTwo() {
        // 1280×886 at scale 0.5 is 640×443: the height rounds up to 448.
        #expect(YuNet.inputSize(imageWidth: 1280, imageHeight: 886, sizeMultiple: 32) == (640, 448))
        // Portrait: 626×1200 is 334×640 at the square's scale, 352 wide.
        #expect(YuNet.inputSize(imageWidth: 626, imageHeight: 1200, sizeMultiple: 32) == (352, 640))
        // Small images are scaled up as the square letterbox does: 320×240 → 640×480.
        #expect(YuNet.inputSize(imageWidth: 320, imageHeight: 240, sizeMultiple: 32) == (640, 480))
        // A long strip still gets a whole grid cell.
        #expect(YuNet.inputSize(imageWidth: 5000, imageHeight: 10, sizeMultiple: 32) == (640, 32))
    }

    @Test func theSquareWhenTheSavingIsSmallOrNoMultipleIsOffered() {
        // 910×1137 fits 512×640: 80 % of the square's pixels, below the 85 % that pays.
        #expect(YuNet.inputSize(imageWidth: 910, imageHeight: 1137, sizeMultiple: 32) == (512, 640))
        // 1000×900 would be 640×576, 90 %: not worth the dynamically shaped compile.
        #expect(YuNet.inputSize(imageWidth: 1000, imageHeight: 900, sizeMultiple: 32) == (640, 640))
        #expect(YuNet.inputSize(imageWidth: 1280, imageHeight: 886, sizeMultiple: nil) == (640, 640))
        // A step that does not divide 640 cannot keep the long side whole.
        #expect(YuNet.inputSize(imageWidth: 1280, imageHeight: 886, sizeMultiple: 48) == (640, 640))
    }

    @Test func preprocessKeepsTheSquaresScaleAndReportsTheCanvas() {
        let image = RGBImage(width: 1280, height: 886, fill: 100)
        let (square, squareGeometry) = YuNet().preprocess(image)
        let (fitted, geometry) = YuNet().preprocess(image, sizeMultiple: 32)
        #expect(square.shape == [1, 3, 640, 640] && fitted.shape == [1, 3, 448, 640])
        #expect(geometry.scale == squareGeometry.scale && geometry.contentHeight == squareGeometry.contentHeight)
        #expect(geometry.canvasWidth == 640 && geometry.canvasHeight == 448)
    }

    @Test func aRefusedImageShapedInputRunsAgainAsTheSquare() async throws {
        let runner = SquareOnlyRunner()
        let image = RGBImage(width: 1280, height: 720, fill: 90)
        let faces = try await YuNet().detect(image, runner: runner, options: DetectionOptions()).faces
        #expect(faces.isEmpty)
        #expect(runner.shapes == [[1, 3, 384, 640], [1, 3, 640, 640]])
    }
}

@Suite("Letterbox resampling")
struct LetterboxResamplingTests {
    /// The bilinear convention written out per pixel (OpenCV's INTER_LINEAR: centres aligned,
    /// neighbours clamped at the edge): x first, then y, then mean and scale, value by value.
    private func reference(
        _ image: RGBImage, width: Int, height: Int, contentWidth: Int, contentHeight: Int, order: ChannelOrder,
        normalization: Normalization
    ) -> [Float] {
        var out = [Float](repeating: 0, count: 3 * width * height)
        let fx = Float(image.width) / Float(contentWidth)
        let fy = Float(image.height) / Float(contentHeight)
        let means = [normalization.mean.0, normalization.mean.1, normalization.mean.2]
        let scales = [normalization.scale.0, normalization.scale.1, normalization.scale.2]
        for dy in 0..<contentHeight {
            let sy = min(max((Float(dy) + 0.5) * fy - 0.5, 0), Float(image.height - 1))
            let y0 = Int(sy)
            let y1 = min(y0 + 1, image.height - 1)
            let wy = sy - Float(y0)
            for dx in 0..<contentWidth {
                let sx = min(max((Float(dx) + 0.5) * fx - 0.5, 0), Float(image.width - 1))
                let x0 = Int(sx)
                let x1 = min(x0 + 1, image.width - 1)
                let wx = sx - Float(x0)
                for plane in 0..<3 {
                    // Plane `plane` of the model's order takes this source channel.
                    let channel = order == .rgb ? plane : 2 - plane
                    func value(_ x: Int, _ y: Int) -> Float { Float(image.pixels[(y * image.width + x) * 3 + channel]) }
                    let top = value(x0, y0) + (value(x1, y0) - value(x0, y0)) * wx
                    let bottom = value(x0, y1) + (value(x1, y1) - value(x0, y1)) * wx
                    out[plane * width * height + dy * width + dx] =
                        (top + (bottom - top) * wy - means[plane]) * scales[plane]
                }
            }
        }
        return out
    }

    /// Guards the letterbox's arithmetic (a rewrite must keep every value, not only the faces).
    @Test func theLetterboxGivesThePerPixelFormulasValues() {
        var generator = SystemRandomNumberGenerator()
        // Down by less and more than 2, up, one row or column, and an odd canvas.
        let cases = [
            (1137, 910, 512, 640), (1200, 626, 352, 640), (100, 75, 640, 480), (1, 300, 32, 640), (999, 1, 640, 32),
            (37, 53, 96, 64),
        ]
        for (sourceWidth, sourceHeight, width, height) in cases {
            let pixels = (0..<(sourceWidth * sourceHeight * 3)).map { _ in UInt8.random(in: 0...255, using: &generator)
            }
            let image = RGBImage(width: sourceWidth, height: sourceHeight, pixels: pixels)
            for (order, normalization) in [
                (ChannelOrder.bgr, Normalization.identity),
                (.rgb, Normalization(mean: (127.5, 127.5, 127.5), scale: (1 / 127.5, 1 / 127.5, 1 / 127.5))),
            ] {
                let (tensor, geometry) = Preprocessing.letterbox(
                    image, width: width, height: height, order: order, normalization: normalization)
                let expected = reference(
                    image, width: width, height: height, contentWidth: geometry.contentWidth,
                    contentHeight: geometry.contentHeight, order: order, normalization: normalization)
                #expect(tensor.data == expected, "\(sourceWidth)×\(sourceHeight) → \(width)×\(height) \(order)")
            }
        }
    }
}

@Suite("Reflected crops and area resizing")
struct ResamplingTests {
    @Test func reflectCropMirrorsWithoutRepeatingTheEdge() {
        let image = RGBImage(width: 3, height: 1, pixels: [10, 0, 0, 20, 0, 0, 30, 0, 0])
        let crop = image.cropped(x: -2, y: 0, width: 7, height: 1, border: .reflect)
        #expect(stride(from: 0, to: 21, by: 3).map { crop.pixels[$0] } == [30, 20, 10, 20, 30, 20, 10])
        let black = image.cropped(x: -2, y: 0, width: 7, height: 1, border: .constant)
        #expect(stride(from: 0, to: 21, by: 3).map { black.pixels[$0] } == [0, 0, 10, 20, 30, 0, 0])
        // Rows reflect too, and periodically when the crop is more than twice the image.
        let column = RGBImage(width: 1, height: 2, pixels: [1, 1, 1, 2, 2, 2])
        let tall = column.cropped(x: 0, y: -3, width: 1, height: 8, border: .reflect)
        #expect(stride(from: 0, to: 24, by: 3).map { tall.pixels[$0] } == [2, 1, 2, 1, 2, 1, 2, 1])
    }

    @Test func areaResizeAveragesTheSourcePixels() {
        // 4×4 → 2×2: each output is the mean of a 2×2 block.
        var pixels = [UInt8]()
        for y in 0..<4 { for x in 0..<4 { pixels += [UInt8(10 * (y * 4 + x)), UInt8(x * 60), 7] } }
        let small = RGBImage(width: 4, height: 4, pixels: pixels).resizedArea(width: 2, height: 2)
        // Block (0,0): values 0, 10, 40, 50 → 25; block (1,1): 100, 110, 140, 150 → 125.
        #expect(small.pixels[0] == 25 && small.pixels[9] == 125)
        #expect(small.pixels[1] == 30 && small.pixels[4] == 150 && small.pixels[2] == 7)
        // 3 → 2 (non-integer): output 0 covers source [0, 1.5) → (1·a + 0.5·b) / 1.5.
        let row = RGBImage(width: 3, height: 1, pixels: [30, 0, 0, 90, 0, 0, 150, 0, 0]).resizedArea(
            width: 2, height: 1)
        #expect(row.pixels[0] == 50 && row.pixels[3] == 130)
        // Every output's weights sum to one, whatever the ratio.
        for (n, m) in [(1000, 128), (129, 128), (128, 128), (50, 128), (7, 3)] {
            let taps = RGBImage.areaTaps(source: n, destination: m)
            for i in 0..<m {
                let sum = taps.weight[taps.offset[i]..<(taps.offset[i] + taps.count[i])].reduce(0, +)
                #expect(abs(sum - 1) < 1e-5, "\(n)→\(m) output \(i)")
                #expect(taps.start[i] >= 0 && taps.start[i] + taps.count[i] <= n)
            }
        }
        // A flat image stays flat both ways.
        let flat = RGBImage(width: 37, height: 23, fill: 99)
        #expect(flat.resizedArea(width: 128, height: 128).pixels.allSatisfy { $0 == 99 })
        #expect(flat.resizedArea(width: 5, height: 4).pixels.allSatisfy { $0 == 99 })
    }
}

@Suite("MiniFAS preprocessing")
struct MiniFASMathTests {
    @Test func cropIsASquareOneAndAHalfTimesTheBoxReflectedAtTheEdges() {
        // Left half dark (20), right half bright (220), 200×100.
        var pixels = [UInt8]()
        for _ in 0..<100 { for x in 0..<200 { pixels += x < 100 ? [20, 20, 20] : [220, 220, 220] } }
        let image = RGBImage(width: 200, height: 100, pixels: pixels)
        // A 40×64 box centred at (100, 50): the crop is 96×96 from (52, 2) — centred on the edge.
        let centred = MiniFAS().crop(image, box: Box(x: 80, y: 18, width: 40, height: 64))
        #expect(centred.width == 128 && centred.height == 128)
        let mid = 64 * 128 * 3
        #expect(centred.pixels[mid + 10 * 3] == 20 && centred.pixels[mid + 117 * 3] == 220)
        // A box at the right edge: the crop reaches past x = 200 and must mirror the bright
        // half back, never show black.
        let edge = MiniFAS().crop(image, box: Box(x: 170, y: 30, width: 30, height: 40))
        #expect(edge.pixels.allSatisfy { $0 >= 20 })
        #expect(edge.pixels[mid + 127 * 3] == 220)
    }

    @Test func marginAndProbabilityFromLogits() throws {
        let results = try MiniFAS().postprocess(
            ["output": Tensor(shape: [2, 2], data: [3, 1, 0.5, 2.5])], threshold: 0)
        #expect(results.count == 2)
        #expect(results[0].isReal && results[0].score == 2 && abs(results[0].probability - 0.880797) < 1e-5)
        #expect(!results[1].isReal && results[1].score == -2 && abs(results[1].probability - 0.119203) < 1e-5)
        #expect(!MiniFAS.judge(real: 3, spoof: 1, threshold: 2.5).isReal)
        #expect(MiniFAS.judge(real: 1, spoof: 1, threshold: 0).isReal)
    }

    @Test func checkFeedsARGBUnitRangeTensor() async throws {
        let runner = RecordingRunner(["output": Tensor(shape: [1, 2], data: [1, 0])])
        let image = RGBImage(width: 64, height: 64, pixels: [UInt8]((0..<(64 * 64)).flatMap { _ in [255, 0, 51] }))
        let face = DetectedFace(box: Box(x: 16, y: 16, width: 32, height: 32), score: 1, landmarks: [])
        let result = try await MiniFAS().check(image, face: face, runner: runner, threshold: 0.5)
        #expect(result.isReal && result.threshold == 0.5)
        let input = try #require(runner.inputs["input"])
        #expect(input.shape == [1, 3, 128, 128])
        let plane = 128 * 128
        #expect(input.data[0] == 1 && input.data[plane] == 0 && abs(input.data[2 * plane] - 0.2) < 1e-6)
    }
}

@Suite("Face mesh geometry")
struct FaceMeshMathTests {
    private func face(center: Point, size: Float, roll: Float) -> DetectedFace {
        let eye = size * 0.2
        let dx = eye * cos(roll)
        let dy = eye * sin(roll)
        return DetectedFace(
            box: Box(x: center.x - size / 2, y: center.y - size / 2, width: size, height: size), score: 1,
            landmarks: [
                Point(x: center.x - dx, y: center.y - dy), Point(x: center.x + dx, y: center.y + dy), center, center,
                center,
            ])
    }

    @Test func cropLevelsTheEyesAndFramesTheFaceAtOneAndAHalf() {
        let f = face(center: Point(x: 300, y: 200), size: 128, roll: 0.3)
        let t = FaceMesh().cropTransform(face: f)
        #expect(abs(t.scale - 1) < 1e-5)  // 128 × 1.5 = 192
        let c = t.apply(f.box.center)
        #expect(abs(c.x - 96) < 1e-3 && abs(c.y - 96) < 1e-3)
        let left = t.apply(f.landmarks[0])
        let right = t.apply(f.landmarks[1])
        #expect(abs(left.y - right.y) < 1e-3 && left.x < right.x)
    }

    @Test func pointsMapBackToTheImageWithZAtTheSameScale() async throws {
        // Centre of the crop, 10 crop px to the right, and a point with depth.
        var mesh = [Float](repeating: 0, count: 1404)
        mesh[0] = 96
        mesh[1] = 96
        mesh[2] = 0
        mesh[3] = 106
        mesh[4] = 96
        mesh[5] = -19.2
        let runner = RecordingRunner([
            "conv2d_20": Tensor(shape: [1, 1404, 1, 1], data: mesh),
            "conv2d_30": Tensor(shape: [1, 1, 1, 1], data: [0]),
        ])
        let roll = Float.pi / 6
        let f = face(center: Point(x: 400, y: 300), size: 256, roll: roll)  // crop side 384 → scale 0.5
        let image = RGBImage(width: 800, height: 600, fill: 128)
        let dense = try await FaceMesh().landmarks(image, face: f, runner: runner)
        #expect(dense.points.count == 468)
        #expect(abs(dense.presence - 0.5) < 1e-6)
        #expect(abs(dense.points[0].x - 400) < 1e-2 && abs(dense.points[0].y - 300) < 1e-2)
        // 10 crop px along the crop's x axis = 20 image px along the eye line.
        #expect(abs(dense.points[1].x - (400 + 20 * cos(roll))) < 1e-2)
        #expect(abs(dense.points[1].y - (300 + 20 * sin(roll))) < 1e-2)
        #expect(abs(dense.points[1].z - -38.4) < 1e-3)
        let input = try #require(runner.inputs["input_1"])
        #expect(input.shape == [1, 3, 192, 192])
        #expect(input.data.allSatisfy { abs($0 - 128 / 255) < 1e-6 })
    }

    @Test func cropSamplesTheRightPlace() {
        // A bright 20×20 square centred at (100, 100) on black; an upright face box of 40 around it
        // → crop side 60, scale 3.2: the square fills the middle 64×64 of the crop.
        var image = RGBImage(width: 200, height: 200)
        for y in 90..<110 { for x in 90..<110 { for c in 0..<3 { image.pixels[(y * 200 + x) * 3 + c] = 255 } } }
        let f = face(center: Point(x: 100, y: 100), size: 40, roll: 0)
        let crop = FaceMesh().crop(image, transform: FaceMesh().cropTransform(face: f))
        func at(_ x: Int, _ y: Int) -> UInt8 { crop.pixels[(y * 192 + x) * 3] }
        #expect(at(96, 96) == 255 && at(66, 96) == 255 && at(125, 125) == 255)
        #expect(at(60, 96) == 0 && at(96, 131) == 0 && at(10, 10) == 0)
        // Downscaled faces go through the supersampled path; the square still lands in the middle.
        let bigImage = image.resizedArea(width: 1000, height: 1000)
        // Box 400 → side 600 → scale 0.32: the square (≈ 450…550) lands on crop 80…112.
        let bigFace = face(center: Point(x: 500, y: 500), size: 400, roll: 0)
        let small = FaceMesh().crop(bigImage, transform: FaceMesh().cropTransform(face: bigFace))
        func shrunk(_ x: Int, _ y: Int) -> UInt8 { small.pixels[(y * 192 + x) * 3] }
        #expect(shrunk(96, 96) == 255 && shrunk(85, 96) == 255 && shrunk(96, 108) == 255)
        #expect(shrunk(70, 96) == 0 && shrunk(96, 122) == 0)
    }
}
