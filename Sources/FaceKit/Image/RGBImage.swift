/// An 8-bit RGB image, pixels interleaved row by row (R, G, B, R, G, B, ...), top row first.
/// Every decoder produces this one layout so the face pipelines have a single input type.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A blank image of the given size, every channel set to `fill`.
    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height * 3))
    }
}

/// Container formats the decoders understand.
public enum ImageFormat: String, Sendable, Codable {
    case jpeg, png, webp, heif
}

/// Bounds applied before any pixel is decoded, so a small file claiming huge dimensions
/// (a decompression bomb) is refused from its header alone.
public struct ImageLimits: Sendable, Equatable {
    public var maxBytes: Int
    public var maxSide: Int
    public var maxPixels: Int

    public init(maxBytes: Int = 10 * 1024 * 1024, maxSide: Int = 8000, maxPixels: Int = 40_000_000) {
        self.maxBytes = maxBytes
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }

    public static let standard = ImageLimits()
}

/// Why an image was refused. The server maps `tooLarge` to 413 `IMAGE_TOO_LARGE` and
/// `invalidFormat` to 422 `INVALID_IMAGE_FORMAT`.
public enum ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(String)
    case invalidFormat(String)

    public var description: String {
        switch self {
        case .tooLarge(let message), .invalidFormat(let message): message
        }
    }
}
