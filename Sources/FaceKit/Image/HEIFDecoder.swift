import CImageCodecs

/// HEIC/HEIF (phones' default photo format) through Debian's libheif, which brings its HEVC
/// decoder (libde265). The container is parsed first, without decoding a pixel, so the size limits
/// apply before any pixel memory exists; libheif applies the file's rotation and mirroring
/// (`irot`/`imir`, what HEIF uses instead of the EXIF tag), so sizes here are upright.
enum HEIFDecoder {
    /// The `ftyp` brands of still HEIF images (HEVC-coded `heic`/`heix`, their sequence and
    /// multi-layer variants, and the generic `mif1`/`msf1`).
    static let brands: Set<String> = ["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"]

    /// Whether the bytes open with an ISO-BMFF `ftyp` box of a HEIF brand.
    static func sniff(_ b: [UInt8]) -> Bool {
        guard b.count >= 12, b[4..<8].elementsEqual("ftyp".utf8) else { return false }
        return brands.contains(String(decoding: b[8..<12], as: UTF8.self))
    }

    /// The primary image's upright size, from the container's boxes alone.
    static func size(_ bytes: [UInt8]) throws(ImageError) -> (width: Int, height: Int) {
        try withPrimaryImage(bytes) { handle throws(ImageError) in
            (Int(heif_image_handle_get_width(handle)), Int(heif_image_handle_get_height(handle)))
        }
    }

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws(ImageError) -> RGBImage {
        try withPrimaryImage(bytes) { handle throws(ImageError) in
            let width = Int(heif_image_handle_get_width(handle))
            let height = Int(heif_image_handle_get_height(handle))
            try limits.check(width: width, height: height)
            var decoded: OpaquePointer?
            let error = heif_decode_image(handle, &decoded, heif_colorspace_RGB, heif_chroma_interleaved_RGB, nil)
            guard error.code == heif_error_Ok, let decoded else {
                throw .invalidFormat("corrupt HEIF: \(message(error))")
            }
            defer { heif_image_release(decoded) }
            var stride: Int32 = 0
            guard let plane = heif_image_get_plane_readonly(decoded, heif_channel_interleaved, &stride),
                heif_image_get_width(decoded, heif_channel_interleaved) == Int32(width),
                heif_image_get_height(decoded, heif_channel_interleaved) == Int32(height), Int(stride) >= width * 3
            else { throw .invalidFormat("corrupt HEIF: the decoded image does not match its header") }
            let rowBytes = width * 3
            let pixels = [UInt8](unsafeUninitializedCapacity: rowBytes * height) { out, initialized in
                for y in 0..<height {
                    (out.baseAddress! + y * rowBytes).update(from: plane + y * Int(stride), count: rowBytes)
                }
                initialized = rowBytes * height
            }
            return RGBImage(width: width, height: height, pixels: pixels)
        }
    }

    /// Parses the container (no pixel is decoded) and hands over its primary image.
    private static func withPrimaryImage<T>(
        _ bytes: [UInt8], _ body: (OpaquePointer) throws(ImageError) -> T
    ) throws(ImageError) -> T {
        guard let context = heif_context_alloc() else { throw .invalidFormat("HEIF: out of memory") }
        defer { heif_context_free(context) }
        let read = bytes.withUnsafeBytes {
            heif_context_read_from_memory_without_copy(context, $0.baseAddress, $0.count, nil)
        }
        guard read.code == heif_error_Ok else { throw .invalidFormat("corrupt HEIF: \(message(read))") }
        var handle: OpaquePointer?
        let primary = heif_context_get_primary_image_handle(context, &handle)
        guard primary.code == heif_error_Ok, let handle else {
            throw .invalidFormat("corrupt HEIF: \(message(primary))")
        }
        defer { heif_image_handle_release(handle) }
        return try body(handle)
    }

    private static func message(_ error: heif_error) -> String {
        error.message.map { String(cString: $0) } ?? "error \(error.code.rawValue)"
    }
}
