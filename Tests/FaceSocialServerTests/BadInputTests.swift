import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// Bad input gets a clear 4xx with a stable code, and the server keeps serving afterwards.
@Suite("Bad input on /v1/detect")
struct BadInputTests {
    /// A PNG signature and IHDR chunk (with a valid CRC) that claim the given size, and no pixels.
    static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        var chunk: [UInt8] = Array("IHDR".utf8)
        for value in [width, height] { chunk += withUnsafeBytes(of: value.bigEndian, Array.init) }
        chunk += [8, 2, 0, 0, 0]
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in chunk {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        crc ^= 0xFFFF_FFFF
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + chunk
            + withUnsafeBytes(of: crc.bigEndian, Array.init)
    }

    static func corruptJPEG() throws -> [UInt8] {
        var bytes = try testImage("obama.jpg")
        // Overwrite the entropy-coded data in the middle with garbage markers.
        let middle = bytes.count / 2
        for i in middle..<(middle + 2000) { bytes[i] = i % 2 == 0 ? 0xFF : 0xD9 }
        // And break the first Huffman table's declared length.
        if let dht = (0..<(bytes.count - 4)).first(where: { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC4 }) {
            bytes[dht + 2] = 0x00
            bytes[dht + 3] = 0x03
        }
        return bytes
    }

    static func truncatedPNG() throws -> [UInt8] {
        let bytes = try testImage("tom_hanks.png")
        return Array(bytes[..<(bytes.count / 2)])
    }

    struct Case: Sendable, CustomStringConvertible {
        let description: String
        let headers: HTTPHeaders
        let body: @Sendable () throws -> ByteBuffer
        let status: HTTPResponseStatus
        let code: String
    }

    /// A multipart body with a truncated JPEG as its image part (one boundary for header and body).
    static let brokenUpload: (HTTPHeaders, ByteBuffer) = {
        var form = Multipart()
        form.file("image", [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])
        return (form.headers, form.body())
    }()

    static let cases: [Case] = [
        Case(
            description: "corrupt JPEG", headers: ["Content-Type": "image/jpeg"],
            body: { ByteBuffer(bytes: try corruptJPEG()) }, status: .unprocessableEntity, code: "INVALID_IMAGE_FORMAT"),
        Case(
            description: "truncated PNG", headers: ["Content-Type": "image/png"],
            body: { ByteBuffer(bytes: try truncatedPNG()) }, status: .unprocessableEntity, code: "INVALID_IMAGE_FORMAT"),
        Case(
            description: "empty body", headers: ["Content-Type": "image/jpeg"], body: { ByteBuffer() },
            status: .badRequest, code: "VALIDATION_FAILED"),
        Case(
            description: "text file as an image", headers: ["Content-Type": "image/jpeg"],
            body: { ByteBuffer(string: "name,age\nalice,31\nbob,42\n") }, status: .unprocessableEntity,
            code: "INVALID_IMAGE_FORMAT"),
        Case(
            description: "PNG header claiming 20000x20000", headers: ["Content-Type": "image/png"],
            body: { ByteBuffer(bytes: pngHeader(width: 20000, height: 20000)) }, status: .payloadTooLarge,
            code: "IMAGE_TOO_LARGE"),
        Case(
            description: "11 MB body", headers: ["Content-Type": "image/jpeg"],
            body: { ByteBuffer(repeating: 0xAB, count: 11 * 1024 * 1024) }, status: .payloadTooLarge,
            code: "IMAGE_TOO_LARGE"),
        Case(
            description: "malformed JSON", headers: ["Content-Type": "application/json"],
            body: { ByteBuffer(string: "{\"image\": ") }, status: .badRequest, code: "VALIDATION_FAILED"),
        Case(
            description: "JSON image that is not base64", headers: ["Content-Type": "application/json"],
            body: { ByteBuffer(string: "{\"image\": \"***not base64***\"}") }, status: .unprocessableEntity,
            code: "INVALID_IMAGE_FORMAT"),
        Case(
            description: "multipart without the image part",
            headers: ["Content-Type": "multipart/form-data; boundary=xyz"],
            body: {
                ByteBuffer(
                    string: "--xyz\r\nContent-Disposition: form-data; name=\"max_faces\"\r\n\r\n3\r\n--xyz--\r\n")
            },
            status: .badRequest, code: "VALIDATION_FAILED"),
        Case(
            description: "corrupt JPEG in multipart", headers: brokenUpload.0,
            body: { brokenUpload.1 }, status: .unprocessableEntity,
            code: "INVALID_IMAGE_FORMAT"),
    ]

    @Test(arguments: cases)
    func refusedWithItsCode(_ testCase: Case) async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.POST, "/v1/detect", headers: testCase.headers, body: try testCase.body()) {
                res in
                #expect(res.status == testCase.status, "\(testCase): \(res.body.string)")
                #expect(errorCode(res) == testCase.code, "\(testCase)")
                #expect(res.headers.first(name: "X-Request-ID") != nil)
                expectConforms("POST", "/v1/detect", res)
            }
            // The same server still serves a good request.
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(bytes: try testImage("obama.jpg"))
            ) { res in
                #expect(res.status == .ok)
                #expect(body(res)[path: "data.face_count"] as? Int == 1)
            }
        }
    }

    @Test(arguments: [
        "confidence_threshold=-0.5", "confidence_threshold=abc", "max_faces=1000000000", "max_faces=0",
        "min_face_size=-1", "nms_threshold=2",
    ])
    func absurdParametersAreValidationErrors(_ query: String) async throws {
        try await withFaceSocial { app in
            try await app.testing().test(
                .POST, "/v1/detect?\(query)", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(bytes: try testImage("obama.jpg"))
            ) { res in
                #expect(res.status == .badRequest)
                let body = try json(res)
                #expect(body[path: "error.code"] as? String == "VALIDATION_FAILED")
                #expect(body[path: "error.details.field"] as? String == String(query.split(separator: "=")[0]))
            }
        }
    }

    @Test func oversizedBodyOverARealSocketThenServing() async throws {
        try await withFaceSocial { app in
            let tester = try app.testing(method: .running(port: RedisTestServer.freePort()))
            try await tester.test(
                .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(repeating: 0x11, count: 11 * 1024 * 1024)
            ) { res in
                #expect(res.status == .payloadTooLarge)
                #expect(errorCode(res) == "IMAGE_TOO_LARGE")
            }
            try await tester.test(.GET, "/health") { res in #expect(res.status == .ok) }
        }
    }

    /// MultipartKit traps on a non-ASCII byte in a part's header name; the server refuses such a
    /// body before the parser sees it (found by the reliability suite, which crashed the server).
    @Test func nonASCIIMultipartHeaderNameIsRefusedNotACrash() async throws {
        try await withFaceSocial { app in
            var body = ByteBuffer(string: "--xyz\r\n")
            body.writeBytes([0xC3, 0xA9])
            body.writeString(": x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--xyz--\r\n")
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "multipart/form-data; boundary=xyz"], body: body
            ) { res in
                #expect(res.status == .badRequest)
                #expect(errorCode(res) == "VALIDATION_FAILED")
            }
            // Non-ASCII in a header value (a UTF-8 file name) is fine.
            var form = Multipart()
            form.file("image", try testImage("obama.jpg"), filename: "фото.jpg")
            try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .ok, "\(res.body.string)")
            }
        }
    }

    @Test func unknownRouteIsEnvelopedNotFound() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.GET, "/v1/nothing-here") { res in
                #expect(res.status == .notFound)
                #expect(errorCode(res) == "NOT_FOUND")
            }
        }
    }
}
