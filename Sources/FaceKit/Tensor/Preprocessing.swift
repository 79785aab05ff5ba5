import CImageKernels

/// Channel order a model expects in its input planes.
public enum ChannelOrder: Sendable {
    case rgb, bgr
}

/// Per-channel normalisation applied while writing planes: value = (pixel − mean) × scale,
/// with mean and scale given in the model's channel order.
public struct Normalization: Sendable, Equatable {
    public var mean: (Float, Float, Float)
    public var scale: (Float, Float, Float)

    public init(mean: (Float, Float, Float) = (0, 0, 0), scale: (Float, Float, Float) = (1, 1, 1)) {
        self.mean = mean
        self.scale = scale
    }

    public static let identity = Normalization()
    /// Values 0…1: each channel divided by 255.
    public static let unitRange = Normalization(scale: (1 / 255, 1 / 255, 1 / 255))

    /// How the manifest's `input.range` writes this normalisation; the server's start check holds
    /// the two together, so a manifest cannot claim one range while a pipeline feeds another.
    /// `0..255`, `0..1`, `0..255 minus (104,117,123)`, `(x - (122.782,117.001,104.298)) / 256`;
    /// `-1..1` (a uniform mean and scale onto whole numbers); anything else `(x - (m0,m1,m2)) * (s0,s1,s2)`.
    public var rangeText: String {
        func text(_ v: (Float, Float, Float)) -> String {
            "(" + [v.0, v.1, v.2].map { String(format: "%g", Double($0)) }.joined(separator: ",") + ")"
        }
        let zeroMean = mean == (0, 0, 0)
        let uniform = scale.0 == scale.1 && scale.1 == scale.2
        let divisor = uniform && scale.0 > 0 ? (1 / Double(scale.0)) : 0
        let wholeDivisor = divisor > 0 && abs(divisor - divisor.rounded()) < 1e-3 ? Int(divisor.rounded()) : nil
        switch (zeroMean, wholeDivisor) {
        case (true, 1): return "0..255"
        case (true, 255): return "0..1"
        case (false, 1): return "0..255 minus \(text(mean))"
        case (false, let k?): return "(x - \(text(mean))) / \(k)"
        default:
            // A uniform mean and scale that map 0…255 onto whole numbers, such as −1…1.
            let (low, high) = ((0 - mean.0) * scale.0, (255 - mean.0) * scale.0)
            if uniform, mean.0 == mean.1, mean.1 == mean.2, abs(low - low.rounded()) < 1e-4,
                abs(high - high.rounded()) < 1e-4
            {
                return "\(Int(low.rounded()))..\(Int(high.rounded()))"
            }
            return "(x - \(text(mean))) * \(text(scale))"
        }
    }

    public static func == (a: Normalization, b: Normalization) -> Bool {
        a.mean == b.mean && a.scale == b.scale
    }
}

/// How a letterboxed image maps back to the original: original = tensor / scale.
public struct LetterboxGeometry: Sendable, Equatable {
    public var scale: Float
    public var contentWidth: Int
    public var contentHeight: Int
    /// The size of the whole input (content and padding), which sets a detector's output grid.
    public var canvasWidth: Int
    public var canvasHeight: Int

    public init(scale: Float, contentWidth: Int, contentHeight: Int, canvasWidth: Int, canvasHeight: Int) {
        self.scale = scale
        self.contentWidth = contentWidth
        self.contentHeight = contentHeight
        self.canvasWidth = canvasWidth
        self.canvasHeight = canvasHeight
    }
}

public enum Preprocessing {
    /// Resizes `image` (bilinear) to fit a `width`×`height` canvas keeping its aspect ratio, places
    /// it at the top-left corner (the rest stays zero) and writes it as a [1, 3, height, width]
    /// planar tensor in one pass, so no intermediate resized image is allocated.
    public static func letterbox(
        _ image: RGBImage, width: Int, height: Int, order: ChannelOrder, normalization: Normalization = .identity
    ) -> (Tensor, LetterboxGeometry) {
        let scale = min(Float(width) / Float(image.width), Float(height) / Float(image.height))
        let contentWidth = max(1, min(width, Int((Float(image.width) * scale).rounded())))
        let contentHeight = max(1, min(height, Int((Float(image.height) * scale).rounded())))
        // Every element is written once: the content, then the zero padding (no zero-fill of the
        // whole 4.9 MB canvas first).
        let data = [Float](unsafeUninitializedCapacity: 3 * width * height) { out, initialized in
            resizeBilinear(
                image, into: out, canvasWidth: width, canvasHeight: height,
                contentWidth: contentWidth, contentHeight: contentHeight, order: order, normalization: normalization)
            for plane in 0..<3 {
                let base = plane * width * height
                for y in 0..<contentHeight where contentWidth < width {
                    (out.baseAddress! + base + y * width + contentWidth).initialize(
                        repeating: 0, count: width - contentWidth)
                }
                if contentHeight < height {
                    (out.baseAddress! + base + contentHeight * width).initialize(
                        repeating: 0, count: (height - contentHeight) * width)
                }
            }
            initialized = 3 * width * height
        }
        let geometry = LetterboxGeometry(
            scale: scale, contentWidth: contentWidth, contentHeight: contentHeight, canvasWidth: width,
            canvasHeight: height)
        return (Tensor(shape: [1, 3, height, width], data: data), geometry)
    }

    /// Resizes the whole image to exactly `width`×`height` (aspect not kept) as a planar tensor.
    public static func resized(
        _ image: RGBImage, width: Int, height: Int, order: ChannelOrder, normalization: Normalization = .identity
    ) -> Tensor {
        let data = [Float](unsafeUninitializedCapacity: 3 * width * height) { out, initialized in
            resizeBilinear(
                image, into: out, canvasWidth: width, canvasHeight: height,
                contentWidth: width, contentHeight: height, order: order, normalization: normalization)
            initialized = 3 * width * height  // the content is the whole canvas
        }
        return Tensor(shape: [1, 3, height, width], data: data)
    }

    /// Writes an RGB image of exactly the tensor's size as planes, without resampling.
    public static func planar(_ image: RGBImage, order: ChannelOrder, normalization: Normalization = .identity)
        -> Tensor
    {
        resized(image, width: image.width, height: image.height, order: order, normalization: normalization)
    }

    // Bilinear sampling with pixel centres aligned (the convention of OpenCV's INTER_LINEAR), with
    // the per-column source indices and weights computed once per call instead of once per pixel.
    private static func resizeBilinear(
        _ image: RGBImage, into out: UnsafeMutableBufferPointer<Float>, canvasWidth: Int, canvasHeight: Int,
        contentWidth: Int, contentHeight: Int, order: ChannelOrder, normalization: Normalization
    ) {
        let sw = image.width
        let sh = image.height
        if sw == contentWidth, sh == contentHeight {
            convert(
                image, into: out, canvasWidth: canvasWidth, canvasHeight: canvasHeight, order: order,
                normalization: normalization)
            return
        }
        let fx = Float(sw) / Float(contentWidth)
        let fy = Float(sh) / Float(contentHeight)
        var x0 = [Int](repeating: 0, count: contentWidth)
        var x1 = [Int](repeating: 0, count: contentWidth)
        var wx = [Float](repeating: 0, count: contentWidth)
        for dx in 0..<contentWidth {
            let sx = min(max((Float(dx) + 0.5) * fx - 0.5, 0), Float(sw - 1))
            let i = Int(sx)
            x0[dx] = i * 3
            x1[dx] = min(i + 1, sw - 1) * 3
            wx[dx] = sx - Float(i)
        }
        let plane = canvasWidth * canvasHeight
        // Output plane offsets for the source R, G, B channels in the model's order.
        let (rPlane, bPlane) = order == .rgb ? (0, 2 * plane) : (2 * plane, 0)
        let gPlane = plane
        let (m0, m1, m2) = normalization.mean
        let (s0, s1, s2) = normalization.scale
        // Mean/scale are in model order; map them to source R, G, B.
        let (mr, mg, mb, sr, sg, sb) = order == .rgb ? (m0, m1, m2, s0, s1, s2) : (m2, m1, m0, s2, s1, s0)
        let mean = SIMD4<Float>(mr, mg, mb, 0)
        let scale = SIMD4<Float>(sr, sg, sb, 0)
        // The AVX-512 kernel takes the row's columns it can (it loads four bytes per pixel, so not
        // those whose right neighbour is a row's last pixel: on the image's last row that fourth
        // byte lies past the end); this loop does the rest, or all of them on other CPUs.
        let kernelColumns = x1.prefix { $0 < (sw - 1) * 3 }.count
        let x0Bytes = x0.map { Int32($0) }
        let x1Bytes = x1.map { Int32($0) }
        let means = [mr, mg, mb]
        let scales = [sr, sg, sb]
        image.pixels.withUnsafeBufferPointer { src in
            x0.withUnsafeBufferPointer { x0 in
                x1.withUnsafeBufferPointer { x1 in
                    wx.withUnsafeBufferPointer { wx in
                        for dy in 0..<contentHeight {
                            let sy = min(max((Float(dy) + 0.5) * fy - 0.5, 0), Float(sh - 1))
                            let yi = Int(sy)
                            let wy = sy - Float(yi)
                            let row0 = yi * sw * 3
                            let row1 = min(yi + 1, sh - 1) * sw * 3
                            let outRow = dy * canvasWidth
                            var planes: [UnsafeMutablePointer<Float>?] = [
                                out.baseAddress! + rPlane + outRow, out.baseAddress! + gPlane + outRow,
                                out.baseAddress! + bPlane + outRow,
                            ]
                            let done = fs_bilinear_rgb_row(
                                src.baseAddress! + row0, src.baseAddress! + row1, x0Bytes, x1Bytes, wx.baseAddress,
                                kernelColumns, wy, means, scales, &planes)
                            for dx in done..<contentWidth {
                                // The three channels of the four neighbours at once.
                                let a = row0 + x0[dx]
                                let b = row0 + x1[dx]
                                let c = row1 + x0[dx]
                                let d = row1 + x1[dx]
                                let pa = SIMD4<Float>(Float(src[a]), Float(src[a + 1]), Float(src[a + 2]), 0)
                                let pb = SIMD4<Float>(Float(src[b]), Float(src[b + 1]), Float(src[b + 2]), 0)
                                let pc = SIMD4<Float>(Float(src[c]), Float(src[c + 1]), Float(src[c + 2]), 0)
                                let pd = SIMD4<Float>(Float(src[d]), Float(src[d + 1]), Float(src[d + 2]), 0)
                                let w = wx[dx]
                                let top = pa + (pb - pa) * w
                                let bottom = pc + (pd - pc) * w
                                let v = (top + (bottom - top) * wy - mean) * scale
                                out[rPlane + outRow + dx] = v[0]
                                out[gPlane + outRow + dx] = v[1]
                                out[bPlane + outRow + dx] = v[2]
                            }
                        }
                    }
                }
            }
        }
    }

    // Same size: bilinear sampling would land on every source pixel exactly, so it is a plain
    // conversion (the common case for `/v1/detect` after a reduced decode, and for face chips).
    private static func convert(
        _ image: RGBImage, into out: UnsafeMutableBufferPointer<Float>, canvasWidth: Int, canvasHeight: Int,
        order: ChannelOrder, normalization: Normalization
    ) {
        let plane = canvasWidth * canvasHeight
        let (rPlane, bPlane) = order == .rgb ? (0, 2 * plane) : (2 * plane, 0)
        let (m0, m1, m2) = normalization.mean
        let (s0, s1, s2) = normalization.scale
        let (mr, mg, mb, sr, sg, sb) = order == .rgb ? (m0, m1, m2, s0, s1, s2) : (m2, m1, m0, s2, s1, s0)
        let w = image.width
        image.pixels.withUnsafeBufferPointer { src in
            let dst = out.baseAddress!
            for y in 0..<image.height {
                let r = dst + rPlane + y * canvasWidth
                let g = dst + plane + y * canvasWidth
                let b = dst + bPlane + y * canvasWidth
                let row = src.baseAddress! + y * w * 3
                for x in 0..<w {
                    r[x] = (Float(row[3 * x]) - mr) * sr
                    g[x] = (Float(row[3 * x + 1]) - mg) * sg
                    b[x] = (Float(row[3 * x + 2]) - mb) * sb
                }
            }
        }
    }
}
