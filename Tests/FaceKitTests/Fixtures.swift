import CImageCodecs
import Foundation
import Testing

/// Image fixtures built in memory at test time, so no binary files live in the repository.
enum Fixtures {
    struct EncodeError: Error { let message: String }

    // MARK: PNG (libpng simplified write API)

    /// Writes `pixels` laid out as `format` (a PNG_FORMAT_* value); 16-bit formats take UInt16s.
    static func png<T>(width: Int, height: Int, format: Int32, pixels: [T], colormap: [UInt8]? = nil) throws -> [UInt8]
    {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = png_uint_32(format)
        if let colormap { image.colormap_entries = png_uint_32(colormap.count / 3) }
        defer { png_image_free(&image) }
        func write(_ out: UnsafeMutableRawPointer?, _ size: inout png_alloc_size_t) -> Int32 {
            pixels.withUnsafeBytes { px in
                if let colormap {
                    return colormap.withUnsafeBytes {
                        png_image_write_to_memory(&image, out, &size, 0, px.baseAddress, 0, $0.baseAddress)
                    }
                }
                return png_image_write_to_memory(&image, out, &size, 0, px.baseAddress, 0, nil)
            }
        }
        var size: png_alloc_size_t = 0
        guard write(nil, &size) != 0 else { throw EncodeError(message: "png size query failed") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        guard bytes.withUnsafeMutableBytes({ write($0.baseAddress, &size) }) != 0 else {
            throw EncodeError(message: "png write failed")
        }
        return Array(bytes.prefix(Int(size)))
    }

    /// A PNG made of the signature and an IHDR chunk only, claiming any size.
    static func pngHeaderOnly(width: UInt32, height: UInt32) -> [UInt8] {
        var ihdr = Array("IHDR".utf8)
        ihdr += bigEndian(width) + bigEndian(height) + [8, 2, 0, 0, 0]  // 8-bit RGB
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + bigEndian(13) + ihdr + bigEndian(crc32(ihdr))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }
    static func littleEndian(_ v: UInt32, bytes: Int = 4) -> [UInt8] {
        (0..<bytes).map { UInt8(v >> (8 * UInt32($0)) & 0xFF) }
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    // MARK: JPEG (TurboJPEG compressor)

    /// `pixelFormat` is a TJPF value; CMYK input produces an Adobe-marked YCCK JPEG.
    static func jpeg(width: Int, height: Int, pixelFormat: TJPF, subsampling: TJSAMP, pixels: [UInt8]) throws -> [UInt8]
    {
        guard let handle = tjInitCompress() else { throw EncodeError(message: "tjInitCompress failed") }
        defer { tjDestroy(handle) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        defer { tjFree(out) }
        let status = pixels.withUnsafeBufferPointer {
            tjCompress2(
                handle, $0.baseAddress, Int32(width), 0, Int32(height), Int32(pixelFormat.rawValue),
                &out, &size, Int32(subsampling.rawValue), 95, 0)
        }
        guard status == 0, let out else { throw EncodeError(message: String(cString: tjGetErrorStr2(handle))) }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }

    /// Inserts an APP1 Exif segment holding only IFD0's orientation tag right after SOI.
    static func withOrientation(_ jpeg: [UInt8], _ orientation: UInt16, bigEndian big: Bool = false) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { big ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] { big ? bigEndian(v) : littleEndian(v) }
        var tiff: [UInt8] = big ? [0x4D, 0x4D] : [0x49, 0x49]
        tiff += u16(42) + u32(8)  // header, IFD0 at offset 8
        tiff += u16(1)  // one entry
        tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + [0, 0]
        tiff += u32(0)  // no next IFD
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let length = UInt16(payload.count + 2)
        return [0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload + jpeg.dropFirst(2)
    }

    // MARK: WebP (libwebp encoder; animation container written by hand)

    static func webpLossless(width: Int, height: Int, rgb: [UInt8]) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let size = rgb.withUnsafeBufferPointer {
            WebPEncodeLosslessRGB($0.baseAddress, Int32(width), Int32(height), Int32(width * 3), &out)
        }
        defer { WebPFree(out) }
        guard size > 0, let out else { throw EncodeError(message: "WebPEncodeLosslessRGB failed") }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// A two-frame animated WebP (VP8X + ANIM + ANMF chunks) reusing a still image's bitstream.
    static func animatedWebP(width: Int, height: Int, rgb: [UInt8]) throws -> [UInt8] {
        let still = try webpLossless(width: width, height: height, rgb: rgb)
        let frameChunk = Array(still[12...])  // the VP8L chunk of a simple-format file
        func chunk(_ fourCC: String, _ payload: [UInt8]) -> [UInt8] {
            Array(fourCC.utf8) + littleEndian(UInt32(payload.count)) + payload + (payload.count % 2 == 1 ? [0] : [])
        }
        let w = UInt32(width - 1)
        let h = UInt32(height - 1)
        let vp8x: [UInt8] = [0x02, 0, 0, 0] + littleEndian(w, bytes: 3) + littleEndian(h, bytes: 3)  // animation flag
        let anim: [UInt8] = [0, 0, 0, 0, 0, 0]  // background colour, loop forever
        let frameHeader =
            littleEndian(0, bytes: 3) + littleEndian(0, bytes: 3) + littleEndian(w, bytes: 3)
            + littleEndian(h, bytes: 3) + littleEndian(100, bytes: 3) + [0]
        let frame = chunk("ANMF", frameHeader + frameChunk)
        let body = Array("WEBP".utf8) + chunk("VP8X", vp8x) + chunk("ANIM", anim) + frame + frame
        return Array("RIFF".utf8) + littleEndian(UInt32(body.count)) + body
    }

    /// A deterministic colourful test pattern.
    static func pattern(width: Int, height: Int) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                rgb[i] = UInt8(x * 255 / max(width - 1, 1))
                rgb[i + 1] = UInt8(y * 255 / max(height - 1, 1))
                rgb[i + 2] = UInt8((x ^ y) & 0xFF)
            }
        }
        return rgb
    }
}

// MARK: HEIC (Debian's heif-enc, from libheif-examples)

extension Fixtures {
    /// A HEIC made by `heif-enc` from JPEG or PNG bytes (quality 90), in a temporary folder.
    static func heic(from input: [UInt8], suffix: String = "jpg") throws -> [UInt8] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "facesocial-heic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("in.\(suffix)")
        let output = folder.appendingPathComponent("out.heic")
        try Data(input).write(to: source)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["heif-enc", "-q", "90", "-o", output.path, source.path]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EncodeError(message: "heif-enc (Debian's libheif-examples) failed: \(message)")
        }
        return [UInt8](try Data(contentsOf: output))
    }
}
