/// Crops that may reach outside the image and area (box-filter) resizing. Liveness models are
/// trained on crops made this way (OpenCV `copyMakeBorder` + `INTER_AREA`), and bilinear
/// downscaling of a large face would alias away exactly the texture they look at.
extension RGBImage {
    /// The `width`×`height` region whose top-left pixel is (`x`, `y`); pixels outside the image
    /// follow `border` (`.reflect` mirrors without repeating the edge pixel, like BORDER_REFLECT_101;
    /// `.constant` is black).
    public func cropped(x: Int, y: Int, width: Int, height: Int, border: BorderMode) -> RGBImage {
        precondition(width > 0 && height > 0)
        let sw = self.width
        let sh = self.height
        // Source column per output column, computed once; -1 means "outside, black".
        let columns = (0..<width).map { Self.borderIndex(x + $0, sw, border) }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                columns.withUnsafeBufferPointer { columns in
                    for v in 0..<height {
                        let sy = Self.borderIndex(y + v, sh, border)
                        if sy < 0 { continue }
                        let row = sy * sw * 3
                        var o = v * width * 3
                        for u in 0..<width {
                            let sx = columns[u]
                            if sx >= 0 {
                                let i = row + sx * 3
                                dst[o] = src[i]
                                dst[o + 1] = src[i + 1]
                                dst[o + 2] = src[i + 2]
                            }
                            o += 3
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Resizes to `width`×`height`. Shrinking averages every source pixel under each output pixel,
    /// weighted by overlap (OpenCV's INTER_AREA); enlarging interpolates bilinearly.
    public func resizedArea(width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0)
        if width == self.width && height == self.height { return self }
        let xs = Self.areaTaps(source: self.width, destination: width)
        let ys = Self.areaTaps(source: self.height, destination: height)
        let sw = self.width
        let sh = self.height
        // Separable: rows first into a float buffer (sh × width), then columns.
        var horizontal = [Float](repeating: 0, count: sh * width * 3)
        pixels.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { mid in
                xs.start.withUnsafeBufferPointer { start in
                    xs.count.withUnsafeBufferPointer { count in
                        xs.offset.withUnsafeBufferPointer { offset in
                            xs.weight.withUnsafeBufferPointer { weight in
                                for y in 0..<sh {
                                    let row = y * sw * 3
                                    for u in 0..<width {
                                        var r: Float = 0
                                        var g: Float = 0
                                        var b: Float = 0
                                        var i = row + start[u] * 3
                                        for t in offset[u]..<(offset[u] + count[u]) {
                                            let w = weight[t]
                                            r += Float(src[i]) * w
                                            g += Float(src[i + 1]) * w
                                            b += Float(src[i + 2]) * w
                                            i += 3
                                        }
                                        let o = (y * width + u) * 3
                                        mid[o] = r
                                        mid[o + 1] = g
                                        mid[o + 2] = b
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let rowLength = width * 3
        horizontal.withUnsafeBufferPointer { mid in
            out.withUnsafeMutableBufferPointer { dst in
                ys.weight.withUnsafeBufferPointer { weight in
                    for v in 0..<height {
                        let first = ys.start[v]
                        let taps = ys.offset[v]..<(ys.offset[v] + ys.count[v])
                        for k in 0..<rowLength {
                            var sum: Float = 0
                            var i = first * rowLength + k
                            for t in taps {
                                sum += mid[i] * weight[t]
                                i += rowLength
                            }
                            dst[v * rowLength + k] = UInt8(min(max(sum.rounded(), 0), 255))
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Per output index along one axis: the first source index, how many consecutive source
    /// indices contribute, and where their weights (summing to 1) start in `weight`.
    struct Taps {
        var start: [Int] = []
        var count: [Int] = []
        var offset: [Int] = []
        var weight: [Float] = []
    }

    static func areaTaps(source n: Int, destination m: Int) -> Taps {
        var taps = Taps()
        let scale = Double(n) / Double(m)
        for i in 0..<m {
            taps.offset.append(taps.weight.count)
            if scale >= 1 {
                // Output pixel i covers source [i·scale, (i+1)·scale); each source pixel counts
                // by the length of its overlap with that interval.
                let lo = Double(i) * scale
                let hi = min(Double(i + 1) * scale, Double(n))
                let first = Int(lo.rounded(.down))
                let last = min(Int(hi.rounded(.up)) - 1, n - 1)
                taps.start.append(first)
                taps.count.append(last - first + 1)
                for k in first...last {
                    let overlap = min(hi, Double(k + 1)) - max(lo, Double(k))
                    taps.weight.append(Float(max(overlap, 0) / scale))
                }
            } else {
                // Enlarging: bilinear with pixel centres aligned, edges clamped.
                let s = min(max((Double(i) + 0.5) * scale - 0.5, 0), Double(n - 1))
                let k = Int(s)
                let f = Float(s - Double(k))
                if k + 1 < n {
                    taps.start.append(k)
                    taps.count.append(2)
                    taps.weight += [1 - f, f]
                } else {
                    taps.start.append(k)
                    taps.count.append(1)
                    taps.weight.append(1)
                }
            }
        }
        return taps
    }

    /// A source coordinate under the border rule; -1 means "outside, use black" (zero). Shared by
    /// resizing and the alignment warp.
    @inline(__always)
    static func borderIndex(_ i: Int, _ n: Int, _ border: BorderMode) -> Int {
        if i >= 0 && i < n { return i }
        switch border {
        case .constant:
            return -1
        case .reflect:
            // Reflect without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
            guard n > 1 else { return 0 }
            let period = 2 * (n - 1)
            var m = i % period
            if m < 0 { m += period }
            return m < n ? m : period - m
        }
    }
}
