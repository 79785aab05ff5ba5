import FaceKit
import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("POST /v1/detect on real photos")
struct DetectTests {
    func detect(_ app: Application, _ name: String) async throws -> [String: Any] {
        var form = Multipart()
        form.file("image", try testImage(name))
        var result: [String: Any] = [:]
        try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
            #expect(res.status == .ok, "\(res.body.string)")
            expectConforms("POST", "/v1/detect", res)
            result = try json(res)
        }
        return result
    }

    @Test(arguments: [("group6_t1.jpg", 6), ("two_people.jpg", 2), ("obama.jpg", 1), ("mask_blue.jpg", 0)])
    func faceCounts(name: String, expected: Int) async throws {
        try await withFaceSocial { app in
            let body = try await detect(app, name)
            let faces = try #require(body[path: "data.faces"] as? [[String: Any]])
            #expect(faces.count == expected, "\(name)")
            #expect(body[path: "data.face_count"] as? Int == expected)
        }
    }

    @Test func landmarksLieInsideTheirBoxAndEyesAboveMouth() async throws {
        try await withFaceSocial { app in
            for name in ["group6_t1.jpg", "two_people.jpg", "obama.jpg"] {
                let body = try await detect(app, name)
                let faces = try #require(body[path: "data.faces"] as? [[String: Any]])
                for face in faces {
                    let box = try #require(face["bbox"] as? [String: Double])
                    let landmarks = try #require(face["landmarks"] as? [String: [String: Double]])
                    #expect(Set(landmarks.keys) == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"])
                    for (name, point) in landmarks {
                        let x = point["x"]!
                        let y = point["y"]!
                        #expect(
                            x >= box["x"]! && x <= box["x"]! + box["width"]! && y >= box["y"]!
                                && y <= box["y"]! + box["height"]!, "\(name) outside its box")
                    }
                    let eyesY = max(landmarks["left_eye"]!["y"]!, landmarks["right_eye"]!["y"]!)
                    let mouthY = min(landmarks["mouth_left"]!["y"]!, landmarks["mouth_right"]!["y"]!)
                    #expect(eyesY < mouthY)
                    // Named from the subject's view: their right eye is on the image's left.
                    #expect(landmarks["right_eye"]!["x"]! < landmarks["left_eye"]!["x"]!)
                }
            }
        }
    }

    @Test func envelopeAndHeaders() async throws {
        try await withFaceSocial { app in
            var form = Multipart()
            form.file("image", try testImage("obama.jpg"))
            var headers = form.headers
            headers.add(name: "X-Request-ID", value: "test-123")
            try await app.testing().test(.POST, "/v1/detect", headers: headers, body: form.body()) { res in
                #expect(res.status == .ok)
                #expect(res.headers.first(name: "X-Request-ID") == "test-123")
                #expect(res.headers.first(name: "X-Model-Used") == "yunet@2023mar")
                #expect(res.headers.first(name: "X-Processing-Time")?.hasSuffix("ms") == true)
                let body = try json(res)
                #expect(body[path: "meta.request_id"] as? String == "test-123")
                #expect(body[path: "meta.models"] as? [String] == ["yunet@2023mar"])
                // The detector's time in this call.
                let spent = try #require(body[path: "meta.model_ms"] as? [String: Double])
                #expect(Array(spent.keys) == ["yunet@2023mar"] && spent["yunet@2023mar"]! > 0, "\(spent)")
                #expect(body[path: "meta.processing_ms"] is Double)
                #expect(body[path: "data.image.width"] as? Int != nil)
            }
        }
    }

    @Test func rawBodyAndBase64JSONGiveTheSameFaces() async throws {
        try await withFaceSocial { app in
            let bytes = try testImage("two_people.jpg")
            var raw: [String: Any] = [:]
            try await app.testing().test(
                .POST, "/v1/detect?max_faces=5", headers: ["Content-Type": "image/jpeg"], body: ByteBuffer(bytes: bytes)
            ) { res in
                #expect(res.status == .ok)
                raw = try json(res)
            }
            let payload = try JSONSerialization.data(withJSONObject: [
                "image": "data:image/jpeg;base64," + Data(bytes).base64EncodedString(), "confidence_threshold": 0.6,
            ])
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "application/json"], body: ByteBuffer(data: payload)
            ) { res in
                #expect(res.status == .ok)
                let body = try json(res)
                #expect(body[path: "data.face_count"] as? Int == 2)
                #expect(
                    (body[path: "data.faces"] as? [[String: Any]])?.map { $0["bbox"] as? [String: Double] }
                        == (raw[path: "data.faces"] as? [[String: Any]])?.map { $0["bbox"] as? [String: Double] })
            }
        }
    }

    /// obama.jpg turned sideways as a JPEG without EXIF: by default (`auto_rotate=auto`) the
    /// detector turns it back, answers in the upload's coordinates and says by how much it turned;
    /// with `auto_rotate=false` it finds nothing.
    @Test func aSidewaysPhotoIsTurnedToFindItsFace() async throws {
        let photo = try ImageDecoder.decode(try testImage("obama.jpg"))
        let upload = try jpeg(photo.turned(clockwise: 90))
        try await withFaceSocial { app in
            for (query, expected) in [("", 1), ("?auto_rotate=false", 0), ("?auto_rotate=true", 1)] {
                try await app.testing().test(
                    .POST, "/v1/detect\(query)", headers: ["Content-Type": "image/jpeg"],
                    body: ByteBuffer(bytes: upload)
                ) { res in
                    #expect(res.status == .ok, "\(res.body.string)")
                    expectConforms("POST", "/v1/detect", res)
                    let body = try json(res)
                    let faces = try #require(body[path: "data.faces"] as? [[String: Any]])
                    #expect(faces.count == expected, "\(query): \(faces.count) faces")
                    guard let face = faces.first else { return }
                    // Turned 90° clockwise, the upload needs 270° more to stand upright; the face's
                    // box is tall in the upload and lies inside it.
                    #expect(face[path: "rotation"] as? Int == 270)
                    let width = try #require(face[path: "bbox.width"] as? Double)
                    let x = try #require(face[path: "bbox.x"] as? Double)
                    #expect(x >= 0 && x + width <= Double(photo.height) + 1)
                    #expect(body[path: "data.image.width"] as? Int == photo.height)
                    // The subject's eyes lie one above the other now: the right eye is higher.
                    let right = try #require(face[path: "landmarks.right_eye.y"] as? Double)
                    let left = try #require(face[path: "landmarks.left_eye.y"] as? Double)
                    #expect(right < left)
                }
            }
        }
    }

    @Test func parametersFilterFaces() async throws {
        try await withFaceSocial { app in
            var form = Multipart()
            form.file("image", try testImage("group6_t1.jpg"))
            form.field("max_faces", "2")
            try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
                #expect(body(res)[path: "data.face_count"] as? Int == 2)
            }
            var big = Multipart()
            big.file("image", try testImage("group6_t1.jpg"))
            big.field("min_face_size", "5000")
            try await app.testing().test(.POST, "/v1/detect", headers: big.headers, body: big.body()) { res in
                #expect(body(res)[path: "data.face_count"] as? Int == 0)
            }
        }
    }
}
