import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

extension GalleryScenario {
    /// `Idempotency-Key` on enrol and batch enrol: a retry answers the first answer and stores
    /// nothing more; the key with another request, a bad key, and two concurrent first requests.
    static func idempotentEnrolment(_ app: Application) async throws {
        let c = GalleryClient(app: app)
        let collection = try await c.createCollection("idempotency-\(UUID().uuidString.prefix(8))")
        let subject = try await c.createSubject(collection, "obama")
        let path = "/v1/collections/\(collection)/subjects/\(subject)/faces"
        let template = "/v1/collections/{collection}/subjects/{subject}/faces"
        func enrol(_ file: String, key: String?) async throws -> (HTTPStatus, [String: Any], HTTPHeaders) {
            var headers: HTTPHeaders = ["Content-Type": "image/jpeg"]
            headers.add(contentsOf: try await c.auth())
            if let key { headers.add(name: "Idempotency-Key", value: key) }
            var answer: (HTTPStatus, [String: Any], HTTPHeaders) = (.ok, [:], [:])
            try await app.testing().test(.POST, path, headers: headers, body: ByteBuffer(bytes: try testImage(file))) {
                res in
                expectConforms("POST", template, res)
                answer = (res.status, body(res), res.headers)
            }
            return answer
        }
        func faceCount() async throws -> Int {
            let subject = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects/\(subject)",
                template: "/v1/collections/{collection}/subjects/{subject}")
            return (subject[path: "data.faces"] as? [Any])?.count ?? -1
        }

        let key = "enrol-\(UUID().uuidString)"
        let (firstStatus, first, firstHeaders) = try await enrol("obama.jpg", key: key)
        #expect(firstStatus == .created, "\(first)")
        #expect(firstHeaders.first(name: "Idempotent-Replayed") == nil)
        let faceID = try #require((first[path: "data.faces"] as? [[String: Any]])?.first?["id"] as? String)
        // The retry: the first answer again, marked as replayed; still one face stored.
        let (retryStatus, retry, retryHeaders) = try await enrol("obama.jpg", key: key)
        #expect(retryStatus == .created)
        #expect(retryHeaders.first(name: "Idempotent-Replayed") == "true")
        #expect((retry[path: "data.faces"] as? [[String: Any]])?.first?["id"] as? String == faceID)
        #expect(try await faceCount() == 1)
        // Without the key the same image is the duplicate it is.
        let (duplicate, duplicateBody, _) = try await enrol("obama.jpg", key: nil)
        #expect(duplicate == .conflict && duplicateBody[path: "error.code"] as? String == "DUPLICATE_IMAGE")
        // The key with another image: refused, nothing stored.
        let (reused, reusedBody, _) = try await enrol("obama2.jpg", key: key)
        #expect(reused == .unprocessableEntity)
        #expect(reusedBody[path: "error.code"] as? String == "IDEMPOTENCY_KEY_REUSED")
        #expect(try await faceCount() == 1)
        // After 24 hours the key is forgotten: the purge drops it, and the retry is a plain duplicate.
        try await IdempotentRequests.purge(on: app.db, now: Date().addingTimeInterval(IdempotentRequests.keepFor + 60))
        let (forgotten, forgottenBody, _) = try await enrol("obama.jpg", key: key)
        #expect(forgotten == .conflict && forgottenBody[path: "error.code"] as? String == "DUPLICATE_IMAGE")
        // A key that is not a token.
        let (bad, badBody, _) = try await enrol("obama2.jpg", key: "two words")
        #expect(bad == .badRequest && badBody[path: "error.details.field"] as? String == "Idempotency-Key")
        // A failed first request keeps no answer: its retry runs (here: a photo without a face,
        // then the same key with it again is still the same 422, not a stored success).
        let failing = "enrol-\(UUID().uuidString)"
        let (noFace, _, _) = try await enrol("mask_blue.jpg", key: failing)
        let (noFaceAgain, _, noFaceHeaders) = try await enrol("mask_blue.jpg", key: failing)
        #expect(noFace == noFaceAgain && noFace.code >= 400)
        #expect(noFaceHeaders.first(name: "Idempotent-Replayed") == nil)

        // Batch enrol: two concurrent first requests with one key enrol once; a later retry replays.
        let batchKey = "batch-\(UUID().uuidString)"
        let items: [[String: Any]] = ["kit_harington_john1.jpeg", "rose_leslie_img1.jpg"].enumerated().map {
            ["external_id": "batch-\($0.offset)", "image": (try? testImage($0.element))?.base64 ?? ""]
        }
        let payload = try JSONSerialization.data(withJSONObject: ["items": items])
        func batch() async throws -> (HTTPStatus, [String: Any]) {
            var headers: HTTPHeaders = ["Content-Type": "application/json", "Idempotency-Key": batchKey]
            headers.add(contentsOf: try await c.auth())
            var answer: (HTTPStatus, [String: Any]) = (.ok, [:])
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/batch/enroll", headers: headers, body: ByteBuffer(data: payload)
            ) { res in answer = (res.status, body(res)) }
            return answer
        }
        async let one = batch()
        async let two = batch()
        let answers = [try await one, try await two]
        let succeeded = answers.filter { $0.0 == .ok }
        #expect(!succeeded.isEmpty, "\(answers)")
        for (status, answer) in answers where status != .ok {
            #expect(status == .conflict && answer[path: "error.code"] as? String == "IDEMPOTENCY_IN_PROGRESS")
        }
        let (later, laterBody) = try await batch()
        #expect(later == .ok && laterBody[path: "data.succeeded"] as? Int == 2, "\(laterBody)")
        let subjects = try await c.json(
            .GET, "/v1/collections/\(collection)/subjects", template: "/v1/collections/{collection}/subjects")
        #expect((subjects[path: "data.items"] as? [Any])?.count == 3, "obama and the two batch subjects, once each")
    }
}

extension GalleryScenario {
    /// Bulk enrolment as a job: 202 at once, progress until done, each item's result; a retry
    /// with its Idempotency-Key gives the same job; a job whose instance was lost has its waiting
    /// items failed, not enrolled.
    static func enrolJobs(_ app: Application) async throws {
        let c = GalleryClient(app: app)
        let collection = try await c.createCollection("jobs-\(UUID().uuidString.prefix(8))")
        let files = ["obama.jpg", "biden.jpg", "mask_blue.jpg", "rose_leslie_img1.jpg"]
        let items: [[String: Any]] = try files.enumerated().map {
            ["external_id": "job-\($0.offset)", "image": Data(try testImage($0.element)).base64EncodedString()]
        }
        let payload = try JSONSerialization.data(withJSONObject: ["items": items])
        let key = "job-\(UUID().uuidString)"
        func create() async throws -> (HTTPStatus, [String: Any], HTTPHeaders) {
            var headers: HTTPHeaders = ["Content-Type": "application/json", "Idempotency-Key": key]
            headers.add(contentsOf: try await c.auth())
            var answer: (HTTPStatus, [String: Any], HTTPHeaders) = (.ok, [:], [:])
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/jobs/enroll", headers: headers, body: ByteBuffer(data: payload)
            ) { res in
                expectConforms("POST", "/v1/collections/{collection}/jobs/enroll", res)
                answer = (res.status, body(res), res.headers)
            }
            return answer
        }
        let (status, created, headers) = try await create()
        #expect(status == .accepted, "\(created)")
        let jobID = try #require(created[path: "data.id"] as? String)
        #expect(created[path: "data.total"] as? Int == 4)
        #expect(headers.first(name: .location) == "/v1/collections/\(collection)/jobs/\(jobID)")
        // Follow it to the end (bounded: four photos take seconds even on a busy machine).
        var job: [String: Any] = [:]
        for _ in 0..<600 {
            job = try await c.json(
                .GET, "/v1/collections/\(collection)/jobs/\(jobID)",
                template: "/v1/collections/{collection}/jobs/{job}")
            if job[path: "data.state"] as? String == "done" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(job[path: "data.state"] as? String == "done", "\(job)")
        #expect(job[path: "data.succeeded"] as? Int == 3 && job[path: "data.failed"] as? Int == 1, "\(job)")
        #expect(job[path: "data.pending"] as? Int == 0)
        let results = try #require(job[path: "data.items"] as? [[String: Any]])
        #expect(results.map { $0["index"] as? Int } == [0, 1, 2, 3])
        #expect(results[2][path: "error.code"] as? String == "NO_FACE_DETECTED")
        // The failed item's subject, created for it, is gone again; the others' stay.
        let subjects = try await c.json(
            .GET, "/v1/collections/\(collection)/subjects", template: "/v1/collections/{collection}/subjects")
        let externalIDs = Set(
            (subjects[path: "data.items"] as? [[String: Any]] ?? []).compactMap { $0["external_id"] as? String })
        #expect(externalIDs == ["job-0", "job-1", "job-3"], "\(externalIDs)")
        #expect((results[0][path: "data.faces"] as? [Any])?.count == 1)
        // The retry of the create: the same job, nothing enrolled twice.
        let (again, replayed, againHeaders) = try await create()
        #expect(again == .accepted && replayed[path: "data.id"] as? String == jobID)
        #expect(againHeaders.first(name: "Idempotent-Replayed") == "true")
        let afterRetry = try await c.json(
            .GET, "/v1/collections/\(collection)/subjects", template: "/v1/collections/{collection}/subjects")
        #expect((afterRetry[path: "data.items"] as? [Any])?.count == 3, "the retry created nothing")

        // A job its instance lost: a running row whose heartbeat stopped long ago.
        let lost = EnrolJob()
        lost.id = UUID()
        lost.collectionID = try #require(UUID(uuidString: collection))
        lost.createdBy = "user:test"
        lost.state = "running"
        lost.total = 2
        lost.succeeded = 0
        lost.failed = 0
        lost.items = try APIJSON.encoder.encode([BatchEnrolResponse.Item?](repeating: nil, count: 2))
        lost.heartbeatAt = Date().addingTimeInterval(-EnrolJobs.lostAfter - 60)
        lost.createdAt = lost.heartbeatAt
        try await lost.create(on: app.db)
        let closed = try await c.json(
            .GET, "/v1/collections/\(collection)/jobs/\(try lost.requireID().uuidString.lowercased())",
            template: "/v1/collections/{collection}/jobs/{job}")
        #expect(closed[path: "data.state"] as? String == "done" && closed[path: "data.failed"] as? Int == 2)
        #expect(
            (closed[path: "data.items"] as? [[String: Any]])?.first?[path: "error.code"] as? String
                == "JOB_INSTANCE_LOST")
        // Another collection's job is not found here.
        let other = try await c.createCollection("jobs-other-\(UUID().uuidString.prefix(8))")
        _ = try await c.json(
            .GET, "/v1/collections/\(other)/jobs/\(jobID)", template: "/v1/collections/{collection}/jobs/{job}",
            expect: .notFound)
    }
}
