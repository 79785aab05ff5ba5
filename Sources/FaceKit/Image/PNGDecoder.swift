import CImageCodecs

/// PNG through libpng's simplified API: the classic API reports errors by longjmp, which would
/// skip Swift frames; the simplified one returns a status and a message instead.
enum PNGDecoder {
    /// Width and height from the IHDR chunk, which the PNG spec requires to come first.
    static func readHeader(_ b: [UInt8]) throws(ImageError) -> (width: Int, height: Int) {
        guard b.count >= 24, b[12..<16].elementsEqual("IHDR".utf8) else {
            throw .invalidFormat("PNG is truncated or lacks its IHDR header")
        }
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        return (be32(16), be32(20))
    }

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws(ImageError) -> RGBImage {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        // Safe after success too: finish_read clears `opaque`, and png_image_free ignores NULL.
        defer { png_image_free(&image) }

        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw .invalidFormat("corrupt PNG: \(message(of: &image))") }
        let width = Int(image.width)
        let height = Int(image.height)
        try limits.check(width: width, height: height)

        // Palette, gray, 16-bit and tRNS inputs are all converted by libpng; alpha is composited
        // onto black so transparent areas do not carry arbitrary hidden colour.
        image.format = png_uint_32(PNG_FORMAT_RGB)
        var black = png_color(red: 0, green: 0, blue: 0)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, &black, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw .invalidFormat("corrupt PNG: \(message(of: &image))") }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    private static func message(of image: inout png_image) -> String {
        let text = withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "unknown libpng error" : text
    }
}
