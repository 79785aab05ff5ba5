import CImageCodecs
import FaceKit
import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// A JPEG of an image (quality 95), for sending edited copies of the test photos.
func jpeg(_ image: RGBImage) throws -> [UInt8] {
    let handle = try #require(tjInitCompress())
    defer { tjDestroy(handle) }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    defer { tjFree(out) }
    let status = image.pixels.withUnsafeBufferPointer {
        tjCompress2(
            handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue), &out,
            &size, Int32(TJSAMP_420.rawValue), 95, 0)
    }
    try #require(status == 0 && out != nil)
    return Array(UnsafeBufferPointer(start: out!, count: Int(size)))
}

@Suite("Quality checks and the enrolment gate")
struct QualityGateTests {
    /// Each level's limits, broken one at a time, give their code with the value and the limit.
    @Test func eachLimitGivesItsCode() {
        let good = FaceQuality(
            score: 0.99, size: 200, sharpness: 900, yaw: 2, roll: 1, brightness: 130, parts: [:], detectionScore: 0.95,
            edgeMargin: 2)
        #expect(good.problems(QualityLimits.high).isEmpty)
        let cases: [(FaceQuality, QualityProblem.Code, String)] = [
            (with(good) { $0.size = 30 }, .faceTooSmall, "size"),
            (with(good) { $0.sharpness = 20 }, .blurry, "sharpness"),
            (with(good) { $0.brightness = 30 }, .tooDark, "brightness"),
            (with(good) { $0.brightness = 240 }, .overexposed, "brightness"),
            (with(good) { $0.yaw = -50 }, .extremePose, "yaw"),
            (with(good) { $0.roll = 35 }, .extremePose, "roll"),
            (with(good) { $0.detectionScore = 0.65 }, .lowDetectionScore, "detection_score"),
            (with(good) { $0.edgeMargin = -0.1 }, .cutOff, "edge_margin"),
        ]
        for (quality, code, measure) in cases {
            let problems = quality.problems(QualityLimits.medium)
            #expect(problems.map(\.code) == [code] && problems.first?.measure == measure, "\(problems)")
        }
        // Stricter levels refuse more: a 50 px face passes low and medium, not high.
        let small = with(good) { $0.size = 50 }
        #expect(small.problems(QualityLimits.low).isEmpty && small.problems(QualityLimits.medium).isEmpty)
        #expect(small.problems(QualityLimits.high).map(\.threshold) == [64])
        #expect(QualityFilter.auto.limits == QualityLimits.medium && QualityFilter.none.limits == nil)
    }

    /// A landmark at or past the image edge makes the margin small or negative.
    @Test func edgeMarginOfAFaceAtTheEdge() {
        let landmarks = [
            Point(x: 100, y: 100), Point(x: 160, y: 100), Point(x: 130, y: 130), Point(x: 110, y: 160),
            Point(x: 150, y: 160),
        ]
        let face = DetectedFace(box: Box(x: 70, y: 60, width: 120, height: 150), score: 0.9, landmarks: landmarks)
        #expect(abs(face.edgeMargin(width: 400, height: 400) - 100 / 60) < 1e-5)
        #expect(abs(face.edgeMargin(width: 170, height: 400) - 10 / 60) < 1e-5)
        #expect(face.edgeMargin(width: 150, height: 400) < 0)
    }

    /// On a real photo: darkened, its face is refused by the default filter with TOO_DARK and its
    /// measure; with quality_filter=none it is enrolled; analyze reports the same problem.
    @Test func enrolmentRefusesADarkFaceAndSaysWhy() async throws {
        let photo = try ImageDecoder.decode(try testImage("obama.jpg"))
        let dark = try jpeg(photo.brightness(0.2))
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("quality-\(UUID().uuidString.prefix(8))")
            let subject = try await c.createSubject(collection, "obama")
            let path = "/v1/collections/\(collection)/subjects/\(subject)/faces"
            let template = "/v1/collections/{collection}/subjects/{subject}/faces"
            var headers = try await c.auth()
            headers.contentType = HTTPMediaType(type: "image", subType: "jpeg")
            try await app.testing().test(.POST, path, headers: headers, body: ByteBuffer(bytes: dark)) { res in
                #expect(res.status == .unprocessableEntity, "\(res.body.string)")
                expectConforms("POST", template, res)
                let error = body(res)
                #expect(error[path: "error.code"] as? String == "FACE_QUALITY_TOO_LOW")
                #expect((error[path: "error.details.reasons"] as? String)?.contains("TOO_DARK") == true, "\(error)")
                #expect(error[path: "error.details.quality_filter"] as? String == "auto")
                print("dark obama.jpg: \(error[path: "error.message"] ?? "")")
            }
            try await app.testing().test(
                .POST, path + "?quality_filter=none", headers: headers, body: ByteBuffer(bytes: dark)
            ) { res in
                #expect(res.status == .created, "\(res.body.string)")
                expectConforms("POST", template, res)
                #expect((body(res)[path: "data.faces"] as? [Any])?.count == 1)
                #expect((body(res)[path: "data.unindexed_faces"] as? [Any])?.isEmpty == true)
            }
            // The photo as taken passes the strictest level.
            let fine = try await c.upload(path + "?quality_filter=high", template: template, file: "obama2.jpg")
            #expect((fine[path: "data.faces"] as? [Any])?.count == 1)
            // analyze reports the failed check with its value and limit.
            var analyze = HTTPHeaders()
            analyze.contentType = HTTPMediaType(type: "image", subType: "jpeg")
            try await app.testing().test(
                .POST, "/v1/analyze?analyses=quality", headers: analyze, body: ByteBuffer(bytes: dark)
            ) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                expectConforms("POST", "/v1/analyze", res)
                let problems = try #require(body(res)[path: "data.faces.0.quality.problems"] as? [[String: Any]])
                let darkness = try #require(problems.first { $0["code"] as? String == "TOO_DARK" }, "\(problems)")
                #expect((darkness["value"] as? Double ?? 99) < 40 && darkness["threshold"] as? Double == 40)
            }
        }
    }
}

private func with(_ q: FaceQuality, _ change: (inout FaceQuality) -> Void) -> FaceQuality {
    var copy = q
    change(&copy)
    return copy
}
