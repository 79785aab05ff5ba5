import CImageCodecs

/// Still WebP (lossy or lossless) through libwebp's simple decoding API.
enum WebPDecoder {
    static func features(_ bytes: [UInt8]) throws(ImageError) -> WebPBitstreamFeatures {
        var features = WebPBitstreamFeatures()
        let status = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &features) }
        guard status == VP8_STATUS_OK else { throw .invalidFormat("corrupt WebP: \(describe(status))") }
        return features
    }

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws(ImageError) -> RGBImage {
        let info = try features(bytes)
        // Which frame would a face pipeline want? Refuse rather than guess.
        guard info.has_animation == 0 else { throw .invalidFormat("animated WebP is not supported") }
        let width = Int(info.width)
        let height = Int(info.height)
        try limits.check(width: width, height: height)

        let count = width * height * 3
        var decoded = false
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            decoded = bytes.withUnsafeBufferPointer { src in
                WebPDecodeRGBInto(src.baseAddress, src.count, out.baseAddress, count, Int32(width * 3)) != nil
            }
            initialized = count  // UInt8 is trivial; the array is discarded if decoding failed
        }
        guard decoded else { throw .invalidFormat("corrupt or truncated WebP data") }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    private static func describe(_ status: VP8StatusCode) -> String {
        switch status {
        case VP8_STATUS_OUT_OF_MEMORY: "out of memory"
        case VP8_STATUS_INVALID_PARAM: "invalid parameter"
        case VP8_STATUS_BITSTREAM_ERROR: "bitstream error"
        case VP8_STATUS_UNSUPPORTED_FEATURE: "unsupported feature"
        case VP8_STATUS_SUSPENDED: "suspended"
        case VP8_STATUS_USER_ABORT: "aborted"
        case VP8_STATUS_NOT_ENOUGH_DATA: "not enough data (truncated file)"
        default: "status \(status.rawValue)"
        }
    }
}
