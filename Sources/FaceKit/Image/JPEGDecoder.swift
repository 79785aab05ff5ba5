import CImageCodecs

/// JPEG through TurboJPEG (API v2, libjpeg-turbo 2.1).
enum JPEGDecoder {
    struct Header {
        var width = 0
        var height = 0
        var orientation = ExifOrientation.identity
        /// Whether an EXIF orientation tag said how the photo stands (even "as stored").
        var orientationTagged = false
        /// An APP14 "Adobe" segment marks CMYK data stored inverted, as Photoshop writes it.
        var hasAdobeMarker = false
    }

    /// Walks the marker segments up to the first scan: frame size from SOFn, orientation from
    /// the first APP1 Exif segment, and whether an Adobe APP14 segment is present.
    static func readHeader(_ b: [UInt8]) throws(ImageError) -> Header {
        var header = Header()
        var sawFrame = false
        var sawExif = false
        var i = 2
        while true {
            guard i < b.count, b[i] == 0xFF else {
                throw .invalidFormat("corrupt JPEG: " + (i < b.count ? "bad marker in header" : "truncated header"))
            }
            while i < b.count, b[i] == 0xFF { i += 1 }  // fill bytes
            guard i < b.count else { throw .invalidFormat("corrupt JPEG: truncated header") }
            let marker = b[i]
            i += 1
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }  // no length field
            if marker == 0xDA || marker == 0xD9 { break }  // start of scan / end of image
            guard i + 2 <= b.count else { throw .invalidFormat("corrupt JPEG: truncated header") }
            let length = Int(b[i]) << 8 | Int(b[i + 1])
            guard length >= 2, i + length <= b.count else { throw .invalidFormat("corrupt JPEG: truncated header") }
            let segment = b[(i + 2)..<(i + length)]
            switch marker {
            case 0xC0...0xCF where marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
                guard !sawFrame, segment.count >= 6 else { break }
                let s = segment.startIndex
                header.height = Int(b[s + 1]) << 8 | Int(b[s + 2])
                header.width = Int(b[s + 3]) << 8 | Int(b[s + 4])
                sawFrame = true
            case 0xE1 where !sawExif && segment.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]):  // "Exif\0\0"
                if let orientation = ExifOrientation(tiff: segment.dropFirst(6)) {
                    header.orientation = orientation
                    header.orientationTagged = true
                }
                sawExif = true
            case 0xEE where segment.starts(with: Array("Adobe".utf8)):
                header.hasAdobeMarker = true
            default:
                break
            }
            i += length
        }
        guard sawFrame else { throw .invalidFormat("corrupt JPEG: no frame header before the image data") }
        return header
    }

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws(ImageError) -> RGBImage {
        try decode(bytes, limits: limits, minimumLongSide: nil).image
    }

    /// The smallest power-of-two reduction (1/2, 1/4, 1/8) TurboJPEG can apply in its inverse DCT
    /// that keeps the longer side at least `minimumLongSide`, or 1.
    static func reduction(width: Int, height: Int, minimumLongSide: Int) -> Int {
        let long = max(width, height)
        var denominator = 1
        // TurboJPEG's scaled size is ceil(side / denominator).
        while denominator < 8, (long + 2 * denominator - 1) / (2 * denominator) >= minimumLongSide {
            denominator *= 2
        }
        return denominator
    }

    /// With `minimumLongSide`, decodes at a reduced size (see `reduction`): the inverse DCT then
    /// computes fewer pixels, which is most of the decoding time, and averages as it goes. Returns
    /// the upload's upright size with it, from the header read here.
    static func decode(
        _ bytes: [UInt8], limits: ImageLimits, minimumLongSide: Int?
    ) throws(ImageError) -> ImageDecoder.Reduced {
        let header = try readHeader(bytes)
        // Pre-rotation dimensions: a rotation keeps the pixel count, and these are what get allocated.
        try limits.check(width: header.width, height: header.height)

        guard let handle = tjInitDecompress() else { throw .invalidFormat("could not start the JPEG decoder") }
        defer { tjDestroy(handle) }

        var w: Int32 = 0
        var h: Int32 = 0
        var subsampling: Int32 = 0
        var colorspace: Int32 = 0
        let headerStatus = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &w, &h, &subsampling, &colorspace)
        }
        guard headerStatus == 0 else { throw failure(handle) }
        try limits.check(width: Int(w), height: Int(h))  // libjpeg's view is the one that allocates
        let denominator = minimumLongSide.map { reduction(width: Int(w), height: Int(h), minimumLongSide: $0) } ?? 1
        let width = (Int(w) + denominator - 1) / denominator
        let height = (Int(h) + denominator - 1) / denominator

        // Libjpeg cannot convert CMYK/YCCK to RGB itself; decode to CMYK and convert below.
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let format = isCMYK ? TJPF_CMYK : TJPF_RGB
        let channels = isCMYK ? 4 : 3
        // Warnings (truncated data, corrupt entropy segments) are failures: the pixels would be
        // partly grey, which a face pipeline must not see. LIMITSCANS guards against the
        // progressive-scan CPU exhaustion attack.
        let flags = Int32(TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)
        let count = width * height * channels
        var status: Int32 = -1
        let decoded = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            status = bytes.withUnsafeBufferPointer {
                tjDecompress2(
                    handle, $0.baseAddress, UInt($0.count), out.baseAddress, Int32(width), 0, Int32(height),
                    Int32(format.rawValue), flags)
            }
            initialized = count  // UInt8 is trivial; the array is discarded on failure
        }
        guard status == 0 else { throw failure(handle) }

        let pixels = isCMYK ? cmykToRGB(decoded, inverted: header.hasAdobeMarker) : decoded
        let image = header.orientation.apply(to: RGBImage(width: width, height: height, pixels: pixels))
        let swapped = header.orientation.swapsAxes
        return ImageDecoder.Reduced(
            image: image, width: swapped ? header.height : header.width, height: swapped ? header.width : header.height)
    }

    /// Adobe CMYK JPEGs (and libjpeg-turbo's own CMYK output) store 255 - ink, so R = C*K/255;
    /// plain CMYK stores ink amounts, so R = (255-C)*(255-K)/255. No ICC colour management:
    /// good enough for face analysis.
    static func cmykToRGB(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let n = cmyk.count / 4
        let flip: UInt32 = inverted ? 0 : 255
        return [UInt8](unsafeUninitializedCapacity: n * 3) { out, initialized in
            cmyk.withUnsafeBufferPointer { inp in
                let src = inp.baseAddress!
                let dst = out.baseAddress!
                for p in 0..<n {
                    let c = UInt32(src[4 * p]) ^ flip
                    let m = UInt32(src[4 * p + 1]) ^ flip
                    let y = UInt32(src[4 * p + 2]) ^ flip
                    let k = UInt32(src[4 * p + 3]) ^ flip
                    dst[3 * p] = UInt8((c * k + 127) / 255)
                    dst[3 * p + 1] = UInt8((m * k + 127) / 255)
                    dst[3 * p + 2] = UInt8((y * k + 127) / 255)
                }
            }
            initialized = n * 3
        }
    }

    private static func failure(_ handle: tjhandle) -> ImageError {
        let message = String(cString: tjGetErrorStr2(handle))
        let kind =
            tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) ? "corrupt or truncated JPEG" : "corrupt JPEG"
        return .invalidFormat("\(kind): \(message)")
    }
}
