import CImageCodecs
import Testing

@testable import FaceKit

/// The error a decode throws, or nil if it succeeded.
private func decodeError(_ bytes: [UInt8], limits: ImageLimits = .standard) -> ImageError? {
    do {
        _ = try ImageDecoder.decode(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

private func isInvalid(_ error: ImageError?) -> Bool {
    if case .invalidFormat = error { true } else { false }
}

private func isTooLarge(_ error: ImageError?) -> Bool {
    if case .tooLarge = error { true } else { false }
}

private func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
    let i = (y * image.width + x) * 3
    return Array(image.pixels[i..<(i + 3)])
}

private func close(_ a: [UInt8], _ b: [UInt8], within tolerance: Int) -> Bool {
    zip(a, b).allSatisfy { abs(Int($0) - Int($1)) <= tolerance }
}

/// Offset of the first occurrence of a two-byte marker.
private func offset(of marker: UInt8, in bytes: [UInt8]) throws -> Int {
    try #require((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == marker })
}

@Suite struct RealPhotoTests {
    @Test(arguments: [
        ("group6_t1.jpg", ImageFormat.jpeg, 1280, 886, false),
        ("obama.jpg", .jpeg, 910, 1137, true),  // EXIF orientation 1: says it stands as stored
        ("obama2.jpg", .jpeg, 626, 1200, true),  // big-endian EXIF, orientation 1
        ("obama_and_biden.jpg", .jpeg, 2000, 1428, false),  // progressive
        ("tom_hanks.png", .png, 112, 112, false),
    ])
    func decodesPhoto(name: String, format: ImageFormat, width: Int, height: Int, tagged: Bool) throws {
        let bytes = try testImage(name)
        #expect(
            try ImageDecoder.probe(bytes)
                == ImageInfo(format: format, width: width, height: height, orientationTagged: tagged))
        let image = try ImageDecoder.decode(bytes)
        #expect(image.width == width && image.height == height)
        #expect(image.pixels.count == width * height * 3)
        // A photo has texture; a decoder that produced a flat buffer would fail this.
        let distinct = Set(
            stride(from: 0, to: image.pixels.count, by: image.pixels.count / 1000 + 1).map { image.pixels[$0] })
        #expect(distinct.count > 50)
    }
}

/// Decoding for a detector: a reduced size straight from the inverse DCT.
@Suite struct ReducedDecodeTests {
    @Test(arguments: [
        // name, decoded size at a 640-pixel minimum long side, upload size
        ("group6_t1.jpg", 640, 443, 1280, 886),  // 1/2
        ("obama_and_biden.jpg", 1000, 714, 2000, 1428),  // 1/2 (1/4 would be 500 wide)
        ("obama2.jpg", 626, 1200, 626, 1200),  // 1/2 would be 600 tall: full size
        ("obama_small.jpg", 320, 240, 320, 240),
        ("tom_hanks.png", 112, 112, 112, 112),  // not a JPEG: full size
    ])
    func decodesAtTheSmallestUsefulSize(name: String, width: Int, height: Int, fullWidth: Int, fullHeight: Int) throws {
        let reduced = try ImageDecoder.decode(testImage(name), minimumLongSide: 640)
        #expect(reduced.image.width == width && reduced.image.height == height)
        #expect(reduced.width == fullWidth && reduced.height == fullHeight)
    }

    @Test func reductionStepsArePowersOfTwo() {
        // TurboJPEG's scaled side is ceil(side / denominator).
        #expect(JPEGDecoder.reduction(width: 1278, height: 100, minimumLongSide: 640) == 1)
        #expect(JPEGDecoder.reduction(width: 1279, height: 100, minimumLongSide: 640) == 2)
        #expect(JPEGDecoder.reduction(width: 100, height: 2556, minimumLongSide: 640) == 2)
        #expect(JPEGDecoder.reduction(width: 100, height: 2557, minimumLongSide: 640) == 4)
        #expect(JPEGDecoder.reduction(width: 40000, height: 100, minimumLongSide: 640) == 8)  // TurboJPEG's floor
    }

    /// Each pixel of the half-size decode is close to the mean of the 2×2 block it covers in the
    /// full decode: the inverse DCT averages, it does not drop pixels.
    @Test func halfSizePixelsAverageTheirBlock() throws {
        let bytes = try testImage("group6_t1.jpg")
        let full = try ImageDecoder.decode(bytes)
        let half = try ImageDecoder.decode(bytes, minimumLongSide: 640).image
        var total = 0
        var count = 0
        for y in 0..<(full.height / 2) {
            for x in 0..<(full.width / 2) {
                let block = [
                    pixel(full, 2 * x, 2 * y), pixel(full, 2 * x + 1, 2 * y),
                    pixel(full, 2 * x, 2 * y + 1), pixel(full, 2 * x + 1, 2 * y + 1),
                ]
                for c in 0..<3 {
                    let mean = block.map { Int($0[c]) }.reduce(0, +) / 4
                    total += abs(mean - Int(pixel(half, x, y)[c]))
                    count += 1
                }
            }
        }
        let meanError = Double(total) / Double(count)
        #expect(meanError < 3, "mean difference \(meanError) grey levels")
    }

    @Test func orientationIsAppliedAndTheUploadSizeIsUpright() throws {
        let tagged = Fixtures.withOrientation(try testImage("group6_t1.jpg"), 6)
        let reduced = try ImageDecoder.decode(tagged, minimumLongSide: 640)
        #expect(reduced.image.width == 443 && reduced.image.height == 640)
        #expect(reduced.width == 886 && reduced.height == 1280)
        #expect(reduced.scaleX == 2 && reduced.scaleY == 2)
    }

    @Test func limitsApplyToTheUploadSize() throws {
        let limits = ImageLimits(maxBytes: 10_000_000, maxSide: 1000, maxPixels: 100_000_000)
        #expect(throws: ImageError.self) {
            try ImageDecoder.decode(try testImage("group6_t1.jpg"), limits: limits, minimumLongSide: 640)
        }
    }
}

@Suite struct ExifOrientationTests {
    /// Only a JPEG whose EXIF carries an orientation says which way is up (`auto_rotate=auto`).
    @Test func probeSaysWhetherTheOrientationIsTagged() throws {
        let original = try testImage("obama_small.jpg")
        #expect(try ImageDecoder.probe(original).orientationTagged == false)
        #expect(try ImageDecoder.probe(Fixtures.withOrientation(original, 1, bigEndian: false)).orientationTagged)
        #expect(try ImageDecoder.probe(try testImage("tom_hanks.png")).orientationTagged == false)
    }

    /// A pixel of a quarter-turned copy maps back onto the same pixel of the original.
    @Test(arguments: [90, 180, 270])
    func turnedPointsMapBack(degrees: Int) {
        let (w, h) = (7, 4)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for (x, y) in [(0, 0), (5, 1), (6, 3), (2, 2)] {
            pixels = [UInt8](repeating: 0, count: w * h * 3)
            pixels[(y * w + x) * 3] = 255
            let turned = RGBImage(width: w, height: h, pixels: pixels).turned(clockwise: degrees)
            #expect(turned.width == (degrees == 180 ? w : h))
            let index = turned.pixels.firstIndex(of: 255)! / 3
            let centre = Point(x: Float(index % turned.width) + 0.5, y: Float(index / turned.width) + 0.5)
            let back = centre.unturned(clockwise: degrees, width: w, height: h)
            #expect(back == Point(x: Float(x) + 0.5, y: Float(y) + 0.5), "\(degrees)° (\(x),\(y)) -> \(back)")
        }
    }

    /// Where output pixel (x, y) comes from in the stored image, straight from the EXIF spec.
    static func source(_ o: Int, _ x: Int, _ y: Int, w: Int, h: Int) -> (Int, Int) {
        switch o {
        case 2: (w - 1 - x, y)
        case 3: (w - 1 - x, h - 1 - y)
        case 4: (x, h - 1 - y)
        case 5: (y, x)
        case 6: (y, h - 1 - x)
        case 7: (w - 1 - y, h - 1 - x)
        case 8: (w - 1 - y, x)
        default: (x, y)
        }
    }

    @Test(arguments: 1...8, [false, true])
    func appliesOrientation(orientation: Int, bigEndian: Bool) throws {
        let original = try testImage("obama_small.jpg")
        let stored = try ImageDecoder.decode(original)
        let tagged = Fixtures.withOrientation(original, UInt16(orientation), bigEndian: bigEndian)
        // The limit check uses the stored (pre-rotation) header size.
        #expect(
            try ImageDecoder.probe(tagged) == ImageInfo(format: .jpeg, width: 320, height: 240, orientationTagged: true)
        )
        let upright = try ImageDecoder.decode(tagged)

        let swapped = orientation >= 5
        #expect(upright.width == (swapped ? stored.height : stored.width))
        #expect(upright.height == (swapped ? stored.width : stored.height))
        for y in 0..<upright.height {
            for x in 0..<upright.width {
                let (sx, sy) = Self.source(orientation, x, y, w: stored.width, h: stored.height)
                guard pixel(upright, x, y) == pixel(stored, sx, sy) else {
                    Issue.record("orientation \(orientation): pixel (\(x), \(y)) should come from (\(sx), \(sy))")
                    return
                }
            }
        }
    }

    @Test func rotate90MovesTopLeftToTopRight() throws {
        let original = try testImage("obama_small.jpg")
        let stored = try ImageDecoder.decode(original)
        let upright = try ImageDecoder.decode(Fixtures.withOrientation(original, 6))
        #expect(upright.width == 240 && upright.height == 320)
        #expect(pixel(upright, 239, 0) == pixel(stored, 0, 0))
        #expect(pixel(upright, 0, 0) == pixel(stored, 0, 239))
        #expect(pixel(upright, 239, 319) == pixel(stored, 319, 0))
    }

    @Test func ignoresOutOfRangeOrientation() throws {
        let original = try testImage("obama_small.jpg")
        #expect(try ImageDecoder.decode(Fixtures.withOrientation(original, 9)) == ImageDecoder.decode(original))
    }
}

@Suite struct CorruptInputTests {
    @Test func emptyBytes() {
        #expect(decodeError([]) == .invalidFormat("image data is empty"))
    }

    @Test func textFile() throws {
        let text = try testImage("README.md")
        #expect(decodeError(text) == .invalidFormat("unrecognised image format: expected JPEG, PNG, WebP or HEIC"))
        #expect(throws: ImageError.self) { try ImageDecoder.probe(text) }
    }

    @Test func corruptEntropyData() throws {
        var bytes = try testImage("group6_t1.jpg")
        let scan = try offset(of: 0xDA, in: bytes)
        let middle = (scan + bytes.count) / 2
        // Stray restart markers inside the entropy-coded data.
        for i in stride(from: middle, to: middle + 512, by: 2) {
            bytes[i] = 0xFF
            bytes[i + 1] = 0xD3
        }
        let error = decodeError(bytes)
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func corruptHuffmanTable() throws {
        var bytes = try testImage("group6_t1.jpg")
        let dht = try offset(of: 0xC4, in: bytes)
        // The 16 code-length counts now sum past 256 codes.
        for i in (dht + 5)..<(dht + 21) { bytes[i] = 0xFF }
        let error = decodeError(bytes)
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func truncatedJPEG() throws {
        let bytes = try testImage("group6_t1.jpg")
        let error = decodeError(Array(bytes.prefix(bytes.count / 2)))
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func truncatedJPEGHeader() throws {
        let bytes = try testImage("obama.jpg")
        let error = decodeError(Array(bytes.prefix(100)))
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func truncatedPNG() throws {
        let bytes = try testImage("tom_hanks.png")
        let error = decodeError(Array(bytes.prefix(bytes.count / 2)))
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func pngWithBadCRC() throws {
        var bytes = try testImage("tom_hanks.png")
        // Flip the first IDAT chunk's stored CRC; its data stays intact.
        let idat = try #require((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual("IDAT".utf8) })
        let length = bytes[(idat - 4)..<idat].reduce(0) { $0 << 8 | Int($1) }
        bytes[idat + 4 + length] ^= 0xFF
        let error = decodeError(bytes)
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func corruptPNGData() throws {
        var bytes = try testImage("tom_hanks.png")
        bytes[2000] ^= 0x55  // inside the first IDAT chunk's compressed data
        let error = decodeError(bytes)
        #expect(isInvalid(error), "got \(String(describing: error))")
    }

    @Test func truncatedWebP() throws {
        let rgb = Fixtures.pattern(width: 64, height: 48)
        let webp = try Fixtures.webpLossless(width: 64, height: 48, rgb: rgb)
        let error = decodeError(Array(webp.prefix(webp.count / 2)))
        #expect(isInvalid(error), "got \(String(describing: error))")
    }
}

@Suite struct LimitTests {
    @Test func hugePNGHeaderIsRefusedBeforeDecoding() throws {
        let bomb = Fixtures.pngHeaderOnly(width: 20000, height: 20000)
        #expect(try ImageDecoder.probe(bomb) == ImageInfo(format: .png, width: 20000, height: 20000))
        let error = decodeError(bomb)
        #expect(error == .tooLarge("image is 20000x20000 px; the limit is 8000 px per side"))
    }

    @Test func hugeJPEGHeaderIsRefusedBeforeDecoding() throws {
        var bytes = try testImage("obama_small.jpg")
        let sof = try offset(of: 0xC0, in: bytes)
        bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0xEA, 0x60, 0xEA, 0x60])  // 60000x60000
        #expect(try ImageDecoder.probe(bytes).width == 60000)
        #expect(isTooLarge(decodeError(bytes)))
    }

    @Test func pixelCountLimit() throws {
        // 7000x7000 is within the side limit but 49 megapixels.
        #expect(
            decodeError(Fixtures.pngHeaderOnly(width: 7000, height: 7000))
                == .tooLarge("image has 49000000 pixels; the limit is 40000000"))
        let photo = try testImage("group6_t1.jpg")
        #expect(isTooLarge(decodeError(photo, limits: ImageLimits(maxPixels: 1280 * 886 - 1))))
        #expect(decodeError(photo, limits: ImageLimits(maxPixels: 1280 * 886)) == nil)
    }

    @Test func sideLimit() throws {
        let photo = try testImage("group6_t1.jpg")
        #expect(isTooLarge(decodeError(photo, limits: ImageLimits(maxSide: 1279))))
    }

    @Test func byteLimit() throws {
        let photo = try testImage("obama.jpg")
        #expect(decodeError(photo, limits: ImageLimits(maxBytes: photo.count)) == nil)
        #expect(
            decodeError(photo, limits: ImageLimits(maxBytes: photo.count - 1))
                == .tooLarge("image is \(photo.count) bytes; the limit is \(photo.count - 1) bytes"))
    }
}

@Suite struct GeneratedFormatTests {
    /// HEIC from the phone-camera path: made with heif-enc from a test photo, it decodes to the
    /// photo's size and close to its pixels (HEVC at quality 90 against the JPEG).
    @Test func heicDecodesLikeItsSource() throws {
        let jpeg = try testImage("obama_small.jpg")
        let heic = try Fixtures.heic(from: jpeg)
        let reference = try ImageDecoder.decode(jpeg)
        #expect(
            try ImageDecoder.probe(heic) == ImageInfo(format: .heif, width: reference.width, height: reference.height))
        let image = try ImageDecoder.decode(heic)
        #expect(image.width == reference.width && image.height == reference.height)
        let difference = zip(image.pixels, reference.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }
        let mean = Double(difference) / Double(image.pixels.count)
        #expect(mean < 6, "mean absolute difference \(mean)")
    }

    /// The size limits hold from the container's boxes; broken files are refused, never crash.
    @Test func heicLimitsAndCorruption() throws {
        let wide = try Fixtures.png(
            width: 3000, height: 16, format: Int32(PNG_FORMAT_RGB),
            pixels: [UInt8](repeating: 128, count: 3000 * 16 * 3))
        let heic = try Fixtures.heic(from: wide, suffix: "png")
        #expect(try ImageDecoder.probe(heic).width == 3000)
        #expect(
            decodeError(heic, limits: ImageLimits(maxSide: 2999))
                == .tooLarge("image is 3000x16 px; the limit is 2999 px per side"))
        #expect(decodeError(heic) == nil)
        for broken in [
            Array(heic.prefix(heic.count / 2)), Array(heic.prefix(40)),
            Array(heic.prefix(24)) + [UInt8](repeating: 0xAB, count: 4000),
        ] {
            guard case .invalidFormat(let message) = decodeError(broken) else {
                Issue.record("a broken HEIC of \(broken.count) bytes was not refused as invalid")
                continue
            }
            #expect(message.contains("HEIF"), "\(message)")
        }
    }

    @Test func sixteenBitPNG() throws {
        // Linear 16-bit values; reading to sRGB 8-bit keeps the extremes exact.
        let colours: [[UInt16]] = [[65535, 0, 0], [0, 65535, 0], [0, 0, 65535], [65535, 65535, 65535], [0, 0, 0]]
        let png = try Fixtures.png(
            width: 5, height: 1, format: Int32(PNG_FORMAT_LINEAR_RGB), pixels: colours.flatMap { $0 })
        #expect(png[24] == 16)  // IHDR bit depth
        let image = try ImageDecoder.decode(png)
        #expect(image.width == 5 && image.height == 1)
        #expect(image.pixels == [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0])
    }

    @Test func palettePNG() throws {
        let palette: [UInt8] = [255, 0, 0, 0, 128, 0, 10, 20, 30]
        let indices: [UInt8] = [0, 1, 2, 2, 1, 0]
        let png = try Fixtures.png(
            width: 3, height: 2, format: Int32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP), pixels: indices,
            colormap: palette)
        #expect(png[25] == 3)  // IHDR colour type: palette
        let image = try ImageDecoder.decode(png)
        #expect(image.pixels == indices.flatMap { palette[Int($0) * 3..<Int($0) * 3 + 3] })
    }

    @Test func grayPNG() throws {
        let gray: [UInt8] = [0, 64, 200, 255]
        let png = try Fixtures.png(width: 2, height: 2, format: Int32(PNG_FORMAT_GRAY), pixels: gray)
        #expect(png[25] == 0)  // IHDR colour type: grayscale
        #expect(try ImageDecoder.decode(png).pixels == gray.flatMap { [$0, $0, $0] })
    }

    @Test func alphaPNGIsCompositedOnBlack() throws {
        let rgba: [UInt8] = [200, 100, 50, 255, 200, 100, 50, 0]
        let png = try Fixtures.png(
            width: 2, height: 1, format: Int32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA), pixels: rgba)
        #expect(png[25] == 6)  // IHDR colour type: RGBA
        #expect(try ImageDecoder.decode(png).pixels == [200, 100, 50, 0, 0, 0])
    }

    @Test func grayscaleJPEG() throws {
        let gray = (0..<(32 * 32)).map { UInt8(($0 % 32) * 8) }
        let jpeg = try Fixtures.jpeg(
            width: 32, height: 32, pixelFormat: TJPF_GRAY, subsampling: TJSAMP_GRAY, pixels: gray)
        let image = try ImageDecoder.decode(jpeg)
        #expect(image.width == 32 && image.height == 32)
        for p in stride(from: 0, to: 32 * 32, by: 37) {
            let rgb = Array(image.pixels[3 * p..<3 * p + 3])
            #expect(rgb[0] == rgb[1] && rgb[1] == rgb[2])
            #expect(close([rgb[0]], [gray[p]], within: 6))
        }
    }

    @Test func cmykJPEG() throws {
        // Four 16x16 quadrants in Adobe's inverted convention (stored value = 255 - ink):
        // red, green, blue and 50% black.
        let quadrants: [[UInt8]] = [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [255, 255, 255, 128]]
        let expected: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]
        var cmyk = [UInt8]()
        for y in 0..<32 {
            for x in 0..<32 { cmyk += quadrants[(y / 16) * 2 + x / 16] }
        }
        let jpeg = try Fixtures.jpeg(
            width: 32, height: 32, pixelFormat: TJPF_CMYK, subsampling: TJSAMP_444, pixels: cmyk)
        #expect(try JPEGDecoder.readHeader(jpeg).hasAdobeMarker)
        let image = try ImageDecoder.decode(jpeg)
        #expect(image.width == 32 && image.height == 32)
        for (q, colour) in expected.enumerated() {
            let centre = pixel(image, (q % 2) * 16 + 8, (q / 2) * 16 + 8)
            #expect(close(centre, colour, within: 8), "quadrant \(q): \(centre) vs \(colour)")
        }
    }

    @Test func plainCMYKIsNotInverted() {
        #expect(JPEGDecoder.cmykToRGB([0, 255, 255, 0, 0, 0, 0, 128], inverted: false) == [255, 0, 0, 127, 127, 127])
        #expect(JPEGDecoder.cmykToRGB([255, 0, 0, 255, 0, 0, 0, 0], inverted: true) == [255, 0, 0, 0, 0, 0])
    }

    @Test func losslessWebP() throws {
        let rgb = Fixtures.pattern(width: 64, height: 48)
        let webp = try Fixtures.webpLossless(width: 64, height: 48, rgb: rgb)
        #expect(try ImageDecoder.probe(webp) == ImageInfo(format: .webp, width: 64, height: 48))
        #expect(try ImageDecoder.decode(webp) == RGBImage(width: 64, height: 48, pixels: rgb))
    }

    @Test func animatedWebPIsRefused() throws {
        let rgb = Fixtures.pattern(width: 16, height: 16)
        let webp = try Fixtures.animatedWebP(width: 16, height: 16, rgb: rgb)
        #expect(try ImageDecoder.probe(webp) == ImageInfo(format: .webp, width: 16, height: 16))
        #expect(decodeError(webp) == .invalidFormat("animated WebP is not supported"))
    }

    @Test func zeroSizedHeadersAreInvalid() throws {
        // Found by the fuzzer (scripts/fuzz.sh): a PNG whose IHDR declares 0x0 passed the probe.
        let png = Fixtures.pngHeaderOnly(width: 0, height: 0)
        #expect(throws: ImageError.self) { try ImageDecoder.probe(png) }
        #expect(throws: ImageError.self) { try ImageDecoder.decode(png) }
        #expect(throws: ImageError.self) { try ImageDecoder.probe(Fixtures.pngHeaderOnly(width: 640, height: 0)) }
    }
}
