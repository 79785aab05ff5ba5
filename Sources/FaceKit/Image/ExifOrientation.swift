/// EXIF tag 0x0112: how the stored pixels must be transformed to appear upright.
/// Phones store sensor-oriented pixels and set this tag instead of rotating the data.
enum ExifOrientation: Int, Sendable {
    case identity = 1
    case flipHorizontal, rotate180, flipVertical, transpose, rotate90CW, transverse, rotate270CW

    /// The upright image's width is the stored height (and the other way round).
    var swapsAxes: Bool { rawValue >= ExifOrientation.transpose.rawValue }

    /// Reads IFD0's orientation from an APP1 payload that starts after "Exif\0\0" (a TIFF
    /// header in either byte order). Nil when there is no valid tag: anything malformed means "no
    /// rotation", never an error, as the pixels are still valid.
    init?(tiff b: ArraySlice<UInt8>) {
        let base = b.startIndex
        guard b.count >= 8 else { return nil }
        let little: Bool
        switch (b[base], b[base + 1]) {
        case (0x49, 0x49): little = true  // "II"
        case (0x4D, 0x4D): little = false  // "MM"
        default: return nil
        }
        func u16(_ offset: Int) -> Int? {
            guard offset >= 0, offset + 2 <= b.count else { return nil }
            let x = Int(b[base + offset])
            let y = Int(b[base + offset + 1])
            return little ? x | y << 8 : x << 8 | y
        }
        func u32(_ offset: Int) -> Int? {
            guard let lo = u16(little ? offset : offset + 2), let hi = u16(little ? offset + 2 : offset) else {
                return nil
            }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return nil }
        for i in 0..<entries {
            let entry = ifd + 2 + 12 * i
            guard let tag = u16(entry) else { return nil }
            guard tag == 0x0112 else { continue }
            // Type 3 is SHORT; its value sits left-justified in the 4-byte value field.
            guard u16(entry + 2) == 3, let value = u16(entry + 8), let o = ExifOrientation(rawValue: value) else {
                return nil
            }
            self = o
            return
        }
        return nil
    }

    /// The upright image. Each source pixel goes to `start + x*dx + y*dy` (in pixels) of the
    /// output, so one tight loop covers all eight cases.
    func apply(to image: RGBImage) -> RGBImage {
        if self == .identity { return image }
        let w = image.width
        let h = image.height
        let (start, dx, dy): (Int, Int, Int) =
            switch self {
            case .identity: (0, 1, w)
            case .flipHorizontal: (w - 1, -1, w)
            case .rotate180: (w * h - 1, -1, -w)
            case .flipVertical: ((h - 1) * w, 1, -w)
            case .transpose: (0, h, 1)
            case .rotate90CW: (h - 1, h, -1)
            case .transverse: (w * h - 1, -h, -1)
            case .rotate270CW: ((w - 1) * h, -h, 1)
            }
        let count = w * h * 3
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            image.pixels.withUnsafeBufferPointer { inp in
                let dst = out.baseAddress!
                let src = inp.baseAddress!
                var s = 0
                for y in 0..<h {
                    var d = (start + y * dy) * 3
                    for _ in 0..<w {
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                        s += 3
                        d += dx * 3
                    }
                }
            }
            initialized = count
        }
        let swapsSides = rawValue >= 5
        return RGBImage(width: swapsSides ? h : w, height: swapsSides ? w : h, pixels: pixels)
    }
}
