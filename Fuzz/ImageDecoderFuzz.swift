// Compiled in one module with FaceKit's sources (scripts/fuzz.sh), so no import.

/// libFuzzer entry point: every input must decode or be refused with an ImageError — never crash,
/// hang or read out of bounds — and every decoded image must letterbox. Small limits keep each run
/// fast.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let limits = ImageLimits(maxBytes: 1 << 20, maxSide: 2048, maxPixels: 2_000_000)
    if let info = try? ImageDecoder.probe(bytes) {
        precondition(info.width > 0 && info.height > 0)
    }
    if let image = try? ImageDecoder.decode(bytes, limits: limits) {
        precondition(image.pixels.count == image.width * image.height * 3)
        precondition(image.width <= limits.maxSide && image.height <= limits.maxSide)
        // The letterbox reads the decoded pixels with 4-byte gathers on AVX-512 CPUs: odd sizes
        // (one row, one column) must stay inside the image.
        let (tensor, geometry) = YuNet().preprocess(image, sizeMultiple: 32)
        precondition(tensor.count == 3 * geometry.canvasWidth * geometry.canvasHeight)
    }
    return 0
}
