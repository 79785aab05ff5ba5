import CImageCodecs

/// What an image's header says, read without decoding any pixel.
public struct ImageInfo: Sendable, Equatable {
    public let format: ImageFormat
    public let width: Int
    public let height: Int
    /// Whether the file says which way is up (a JPEG's EXIF orientation tag). Without it, a photo
    /// taken sideways arrives sideways, and the detector may turn it to look for faces.
    public let orientationTagged: Bool

    public init(format: ImageFormat, width: Int, height: Int, orientationTagged: Bool = false) {
        self.format = format
        self.width = width
        self.height = height
        self.orientationTagged = orientationTagged
    }
}

/// Decodes uploaded JPEG, PNG, WebP and HEIC/HEIF bytes into `RGBImage`. Every failure is an `ImageError`;
/// limits are enforced from the header before any pixel memory is allocated.
public enum ImageDecoder {
    /// Sniffs the format from magic bytes and reads the dimensions from the header only.
    public static func probe(_ bytes: [UInt8]) throws(ImageError) -> ImageInfo {
        let info = try readInfo(bytes)
        // A header may claim any size; zero (or a negative value read as signed) is never an image.
        guard info.width > 0, info.height > 0 else {
            throw .invalidFormat("\(info.format.rawValue) header declares a \(info.width)x\(info.height) image")
        }
        return info
    }

    private static func readInfo(_ bytes: [UInt8]) throws(ImageError) -> ImageInfo {
        switch sniff(bytes) {
        case .jpeg:
            let header = try JPEGDecoder.readHeader(bytes)
            return ImageInfo(
                format: .jpeg, width: header.width, height: header.height, orientationTagged: header.orientationTagged)
        case .png:
            let (width, height) = try PNGDecoder.readHeader(bytes)
            return ImageInfo(format: .png, width: width, height: height)
        case .webp:
            let features = try WebPDecoder.features(bytes)
            return ImageInfo(format: .webp, width: Int(features.width), height: Int(features.height))
        case .heif:
            let (width, height) = try HEIFDecoder.size(bytes)
            return ImageInfo(format: .heif, width: width, height: height)
        case nil:
            if bytes.isEmpty { throw .invalidFormat("image data is empty") }
            throw .invalidFormat("unrecognised image format: expected JPEG, PNG, WebP or HEIC")
        }
    }

    /// Decodes to 8-bit RGB. JPEGs are turned upright according to their EXIF orientation.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = .standard) throws(ImageError) -> RGBImage {
        try decodeProbed(bytes, limits: limits).image
    }

    /// `decode`, with what the header said (whether it names its orientation, for one).
    public static func decodeProbed(
        _ bytes: [UInt8], limits: ImageLimits = .standard
    ) throws(ImageError) -> (image: RGBImage, info: ImageInfo) {
        guard bytes.count <= limits.maxBytes else {
            throw .tooLarge("image is \(bytes.count) bytes; the limit is \(limits.maxBytes) bytes")
        }
        let info = try probe(bytes)
        try limits.check(width: info.width, height: info.height)
        switch info.format {
        case .jpeg: return (try JPEGDecoder.decode(bytes, limits: limits), info)
        case .png: return (try PNGDecoder.decode(bytes, limits: limits), info)
        case .webp: return (try WebPDecoder.decode(bytes, limits: limits), info)
        case .heif: return (try HEIFDecoder.decode(bytes, limits: limits), info)
        }
    }

    /// An image decoded for a detector: possibly smaller than the upload, with the upload's size.
    public struct Reduced: Sendable {
        public var image: RGBImage
        /// The upright size of the upload; coordinates found in `image` scale to it.
        public var width: Int
        public var height: Int
        /// Whether the file said which way is up (`ImageInfo.orientationTagged`).
        public var orientationTagged = false

        /// Multiply a coordinate in `image` by these to get it in the upload.
        public var scaleX: Float { Float(width) / Float(image.width) }
        public var scaleY: Float { Float(height) / Float(image.height) }
    }

    /// Decodes for a detector whose input's longer side is `minimumLongSide`: a JPEG at least
    /// twice that size is decoded at 1/2, 1/4 or 1/8 of its size by the inverse DCT itself
    /// (libjpeg-turbo's scaled decoding), which takes a fraction of the time of a full decode
    /// followed by a resize and averages neighbouring pixels much as an area resize would. The
    /// detector never sees more than `minimumLongSide` pixels a side anyway. Other formats decode
    /// at full size. Limits apply to the upload's size.
    public static func decode(
        _ bytes: [UInt8], limits: ImageLimits = .standard, minimumLongSide: Int
    ) throws(ImageError) -> Reduced {
        guard bytes.count <= limits.maxBytes else {
            throw .tooLarge("image is \(bytes.count) bytes; the limit is \(limits.maxBytes) bytes")
        }
        let info = try probe(bytes)
        try limits.check(width: info.width, height: info.height)
        guard info.format == .jpeg else {
            let image = try decode(bytes, limits: limits)
            return Reduced(
                image: image, width: image.width, height: image.height, orientationTagged: info.orientationTagged)
        }
        var reduced = try JPEGDecoder.decode(bytes, limits: limits, minimumLongSide: minimumLongSide)
        reduced.orientationTagged = info.orientationTagged
        return reduced
    }

    static func sniff(_ b: [UInt8]) -> ImageFormat? {
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return .jpeg }
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), b[8..<12].elementsEqual("WEBP".utf8) { return .webp }
        if HEIFDecoder.sniff(b) { return .heif }
        return nil
    }
}

extension ImageLimits {
    /// Refuses dimensions over the side or pixel limits; called with header dimensions so a
    /// decompression bomb is stopped before its pixel buffer exists.
    func check(width: Int, height: Int) throws(ImageError) {
        guard width > 0, height > 0 else {
            throw .invalidFormat("image header declares an empty size (\(width)x\(height))")
        }
        guard width <= maxSide, height <= maxSide else {
            throw .tooLarge("image is \(width)x\(height) px; the limit is \(maxSide) px per side")
        }
        // Both sides are bounded by maxSide here, so the product cannot overflow.
        guard width * height <= maxPixels else {
            throw .tooLarge("image has \(width * height) pixels; the limit is \(maxPixels)")
        }
    }
}
