import Foundation
import SQLKit
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// A signed-in token shared by copies of a client.
final class TokenBox: Sendable {
    let value = Mutex<String?>(nil)
}

/// The enrol → identify scenario the issue asks for, run on SQLite and on PostgreSQL: the same
/// requests, two server instances over one database.
struct GalleryClient {
    let app: Application
    private let token = TokenBox()

    init(app: Application) { self.app = app }

    /// Gallery routes need a principal: the test admin, signed in once per client.
    func auth() async throws -> HTTPHeaders {
        if let cached = token.value.withLock({ $0 }) { return ["Authorization": "Bearer \(cached)"] }
        let (access, _) = try await login(app, adminEmail, adminPassword)
        token.value.withLock { $0 = access }
        return ["Authorization": "Bearer \(access)"]
    }

    @discardableResult
    func json(
        _ method: HTTPMethod, _ path: String, template: String, _ payload: [String: Any]? = nil,
        expect status: HTTPResponseStatus = .ok
    ) async throws -> [String: Any] {
        var result: [String: Any] = [:]
        var headers = try await auth()
        var buffer = ByteBuffer()
        if let payload {
            headers.contentType = .json
            buffer.writeBytes(try JSONSerialization.data(withJSONObject: payload))
        }
        try await app.testing().test(method, path, headers: headers, body: buffer) { res in
            #expect(res.status == status, "\(method) \(path): \(res.body.string.prefix(400))")
            expectConforms(method.rawValue, template, res)
            result = body(res)
        }
        return result
    }

    @discardableResult
    func upload(
        _ path: String, template: String, file: String, fields: [String: String] = [:],
        expect status: HTTPResponseStatus = .created
    ) async throws -> [String: Any] {
        var form = Multipart()
        form.file("image", try testImage(file))
        for (k, v) in fields { form.field(k, v) }
        var result: [String: Any] = [:]
        var headers = form.headers
        headers.add(contentsOf: try await auth())
        try await app.testing().test(.POST, path, headers: headers, body: form.body()) { res in
            #expect(res.status == status, "POST \(path) \(file): \(res.body.string.prefix(400))")
            expectConforms("POST", template, res)
            result = body(res)
        }
        return result
    }

    func createCollection(_ name: String) async throws -> String {
        let created = try await json(
            .POST, "/v1/collections", template: "/v1/collections", ["name": name], expect: .created)
        return try #require(created[path: "data.id"] as? String)
    }

    func createSubject(_ collection: String, _ externalID: String) async throws -> String {
        let created = try await json(
            .POST, "/v1/collections/\(collection)/subjects", template: "/v1/collections/{collection}/subjects",
            ["external_id": externalID, "name": externalID.capitalized, "metadata": ["source": "test"]],
            expect: .created)
        return try #require(created[path: "data.id"] as? String)
    }

    func enrol(_ collection: String, _ subject: String, _ file: String, expect status: HTTPResponseStatus = .created)
        async throws -> [String: Any]
    {
        try await upload(
            "/v1/collections/\(collection)/subjects/\(subject)/faces",
            template: "/v1/collections/{collection}/subjects/{subject}/faces", file: file, expect: status)
    }

    /// Identify results: for each face, (top external id, similarity, unknown).
    func identify(_ collection: String, _ file: String) async throws -> [(String?, Double, Bool)] {
        let result = try await upload(
            "/v1/collections/\(collection)/identify", template: "/v1/collections/{collection}/identify", file: file,
            expect: .ok)
        let faces = try #require(result[path: "data.faces"] as? [[String: Any]])
        return faces.map { face in
            let top = (face["matches"] as? [[String: Any]])?.first
            return (
                top?["external_id"] as? String, top?["similarity"] as? Double ?? -1, face["unknown"] as? Bool ?? false
            )
        }
    }
}

enum GalleryScenario {
    /// Enrols obama, biden and kit_harington through `writer`, identifies through both instances,
    /// checks duplicates, encryption at rest, and cross-instance freshness. Returns the collection.
    @discardableResult
    static func run(writer: Application, reader: Application) async throws -> String {
        let w = GalleryClient(app: writer)
        let r = GalleryClient(app: reader)
        let collection = try await w.createCollection("tenant-\(UUID().uuidString.prefix(8))")
        var subjects: [String: String] = [:]
        for (person, file) in [
            ("obama", "obama.jpg"), ("biden", "biden.jpg"), ("kit_harington", "kit_harington_john1.jpeg"),
        ] {
            subjects[person] = try await w.createSubject(collection, person)
            let enrolled = try await w.enrol(collection, subjects[person]!, file)
            #expect((enrolled[path: "data.faces"] as? [Any])?.count == 1)
        }
        // The same image twice for a subject is refused before any model runs.
        let duplicate = try await w.enrol(collection, subjects["obama"]!, "obama.jpg", expect: .conflict)
        #expect(duplicate[path: "error.code"] as? String == "DUPLICATE_IMAGE")
        // A second subject with the same external id is refused.
        _ = try await w.json(
            .POST, "/v1/collections/\(collection)/subjects", template: "/v1/collections/{collection}/subjects",
            ["external_id": "obama"], expect: .conflict)

        // The group photo: obama and biden are found, the child is unknown; on both instances.
        for client in [w, r] {
            let faces = try await client.identify(collection, "obama_and_biden.jpg")
            #expect(faces.count == 3, "\(faces)")
            let known = faces.filter { !$0.2 }
            #expect(Set(known.compactMap(\.0)) == ["obama", "biden"], "\(faces)")
            #expect(faces.filter(\.2).count == 1, "the child is not enrolled: \(faces)")
            // Someone never enrolled is unknown.
            let stranger = try await client.identify(collection, "rose_leslie_img1.jpg")
            #expect(stranger.count == 1 && stranger[0].2, "\(stranger)")
            // Another photo of an enrolled person is recognised.
            let obama = try await client.identify(collection, "obama2.jpg")
            #expect(obama.first?.0 == "obama" && obama.first?.2 == false, "\(obama)")
        }

        // The embedding column holds ciphertext, not the floats: the exported (decrypted)
        // embedding's float32 bytes appear nowhere in the stored value.
        let export = try await w.json(
            .GET, "/v1/collections/\(collection)/subjects/\(subjects["obama"]!)/export",
            template: "/v1/collections/{collection}/subjects/{subject}/export")
        let embedding = try #require((export[path: "data.faces.0.embedding"] as? [Double])?.map { Float($0) })
        #expect(embedding.count == 128)
        let sql = try writer.databaseRouter.primary as! any SQLDatabase
        let rows = try await sql.raw(
            "SELECT embedding, key_id FROM faces WHERE collection_id = \(bind: UUID(uuidString: collection)!)"
        ).all()
        #expect(rows.count == 3)
        let plainBytes = embedding.flatMap { value -> [UInt8] in
            withUnsafeBytes(of: value.bitPattern.littleEndian) { [UInt8]($0) }
        }
        for row in rows {
            let stored = [UInt8](try row.decode(column: "embedding", as: Data.self))
            #expect(stored.count == 128 * 4 + 28, "AES-GCM nonce + ciphertext + tag")
            for start in stride(from: 0, to: 128 * 4, by: 32) {
                let window = Array(plainBytes[start..<start + 8])
                #expect(!contains(stored, window), "plain embedding bytes found in the embedding column")
            }
        }
        #expect((export[path: "data.audit"] as? [Any])?.isEmpty == false, "the export itself is audited")

        // A write through one instance is seen by the other's index without a restart: pushed by
        // NOTIFY on PostgreSQL (the caller sets a safety-net poll far longer than this wait, so
        // nothing else explains it), polled on SQLite. How long it takes is the machine's load,
        // so it is reported, not bounded.
        let rose = try await w.createSubject(collection, "rose_leslie")
        let key = try testEmbeddingModel()
        // The reader's index is loaded before the write, so this tests invalidation, not a first load.
        #expect(try await reader.gallery.index(UUID(uuidString: collection)!, model: key).count == 3)
        _ = try await w.enrol(collection, rose, "rose_leslie_img1.jpg")
        let written = ContinuousClock.now
        var seen: Duration?
        while ContinuousClock.now - written < .seconds(10) {
            if try await reader.gallery.index(UUID(uuidString: collection)!, model: key).count == 4 {
                seen = ContinuousClock.now - written
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let delay = try #require(seen, "the second instance never saw the enrolment")
        print("cross-instance enrolment seen after \(delay)")
        let roseAgain = try await r.identify(collection, "rose_leslie_img2.jpg")
        #expect(roseAgain.first?.0 == "rose_leslie" && roseAgain.first?.2 == false, "\(roseAgain)")

        // Erasure through one instance removes the subject from the other's answers.
        let erased = try await w.json(
            .DELETE, "/v1/collections/\(collection)/subjects/\(rose)",
            template: "/v1/collections/{collection}/subjects/{subject}")
        #expect(erased[path: "data.faces_erased"] as? Int == 1)
        let erasedAt = ContinuousClock.now
        while ContinuousClock.now - erasedAt < .seconds(10) {
            if try await reader.gallery.index(UUID(uuidString: collection)!, model: key).count == 3 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let afterErase = try await r.identify(collection, "rose_leslie_img2.jpg")
        #expect(afterErase.first?.2 == true, "erased subject still matched: \(afterErase)")
        let audit = try await sql.raw(
            "SELECT action FROM audit_events WHERE resource_id = \(bind: rose.lowercased())"
        ).all().map { try $0.decode(column: "action", as: String.self) }
        #expect(audit == ["subject.erase"])
        return collection
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }
}

/// The embedding model the routes enrol with.
func testEmbeddingModel() throws -> EmbeddingModelKey {
    EmbeddingModelKey(
        id: "sface", version: try #require(try sharedRegistry.get().store.manifest.entry("sface")).version)
}

/// Runs `body` with two applications sharing one database (extra environment for both). They
/// share their secrets too, as a deployment's instances do: each data folder would otherwise make
/// its own, and one could not open the embeddings the other sealed.
func withTwoInstances(_ extra: [String: String], _ body: (Application, Application) async throws -> Void)
    async throws
{
    var extra = extra
    extra["JWT_SECRET_KEY"] = extra["JWT_SECRET_KEY"] ?? "two-instances-" + UUID().uuidString
    extra["FACESOCIAL_DATA_KEY"] = extra["FACESOCIAL_DATA_KEY"] ?? SymmetricKey(size: .bits256).base64
    try await withFaceSocial(extra) { first in
        try await withFaceSocial(extra) { second in
            try await body(first, second)
        }
    }
}
