import Crypto
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Galleries on SQLite")
struct GalleryTests {
    /// A database file that outlives one app (two instances, or a restart), and its removal: it
    /// holds sealed embeddings, which a test must not leave behind.
    static func sharedSQLite() -> (env: [String: String], remove: @Sendable () -> Void) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-gallery-\(UUID()).sqlite")
        let remove: @Sendable () -> Void = {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                try? FileManager.default.removeItem(atPath: path.path + suffix)
            }
        }
        return (["DATABASE_URL": "sqlite://\(path.path)", "FACESOCIAL_GALLERY_POLL_MS": "200"], remove)
    }

    @Test func enrolIdentifyAcrossTwoInstances() async throws {
        let database = Self.sharedSQLite()
        defer { database.remove() }
        try await withTwoInstances(database.env) { first, second in
            try await GalleryScenario.run(writer: first, reader: second)
        }
    }

    @Test func searchByStoredFaceAndByEmbedding() async throws {
        try await withFaceSocial { app in try await GalleryScenario.searchByFaceAndByEmbedding(app) }
    }

    @Test func idempotentEnrolment() async throws {
        try await withFaceSocial { app in try await GalleryScenario.idempotentEnrolment(app) }
    }

    @Test func enrolJobs() async throws {
        try await withFaceSocial { app in try await GalleryScenario.enrolJobs(app) }
    }

    @Test func clustersOfUnnamedFaces() async throws {
        try await withFaceSocial { app in try await GalleryScenario.clustersOfUnnamedFaces(app) }
    }

    @Test func collectionsSubjectsPagingRenameAndErrors() async throws {
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("paging")
            let dup = try await c.json(
                .POST, "/v1/collections", template: "/v1/collections", ["name": "paging"], expect: .conflict)
            #expect(dup[path: "error.code"] as? String == "ALREADY_EXISTS")
            let bad = try await c.json(
                .POST, "/v1/collections", template: "/v1/collections", ["name": "  "], expect: .badRequest)
            #expect(bad[path: "error.code"] as? String == "VALIDATION_FAILED")
            for i in 0..<5 { _ = try await c.createSubject(collection, "person-\(i)") }
            let template = "/v1/collections/{collection}/subjects"
            let page1 = try await c.json(.GET, "/v1/collections/\(collection)/subjects?limit=2", template: template)
            let page3 = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects?limit=2&offset=4", template: template)
            #expect(page1[path: "data.total"] as? Int == 5)
            #expect((page1[path: "data.items"] as? [Any])?.count == 2)
            #expect((page3[path: "data.items"] as? [Any])?.count == 1)
            let first = try #require(page1[path: "data.items.0.id"] as? String)
            let renamed = try await c.json(
                .PATCH, "/v1/collections/\(collection)/subjects/\(first)",
                template: "/v1/collections/{collection}/subjects/{subject}", ["name": "Renamed", "metadata": ["a": 1]])
            #expect(renamed[path: "data.name"] as? String == "Renamed")
            #expect(renamed[path: "data.metadata.a"] as? Int == 1)
            let listed = try await c.json(.GET, "/v1/collections", template: "/v1/collections")
            #expect((listed[path: "data.items"] as? [Any])?.count == 1)
            let one = try await c.json(.GET, "/v1/collections/\(collection)", template: "/v1/collections/{collection}")
            #expect(one[path: "data.subject_count"] as? Int == 5)
            // Unknown ids are 404 NOT_FOUND, bad paging is 400.
            let missing = try await c.json(
                .GET, "/v1/collections/\(UUID())/subjects", template: template, expect: .notFound)
            #expect(missing[path: "error.code"] as? String == "NOT_FOUND")
            _ = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects?limit=0", template: template, expect: .badRequest)
            _ = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects/not-a-uuid",
                template: "/v1/collections/{collection}/subjects/{subject}", expect: .notFound)
            // No face: 422, nothing stored.
            let subject = try await c.createSubject(collection, "noface")
            var form = Multipart()
            form.file("image", try testImage("mask_blue.jpg"))
            var headers = form.headers
            headers.add(contentsOf: try await c.auth())
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/subjects/\(subject)/faces", headers: headers,
                body: form.body()
            ) { res in
                #expect(res.status == .unprocessableEntity)
                #expect(errorCode(res) == "NO_FACE_DETECTED")
            }
            let deleted = try await c.json(
                .DELETE, "/v1/collections/\(collection)", template: "/v1/collections/{collection}")
            #expect(deleted[path: "data.deleted"] as? Bool == true)
            _ = try await c.json(
                .GET, "/v1/collections/\(collection)", template: "/v1/collections/{collection}", expect: .notFound)
        }
    }

    @Test func batchEnrolAllFacesAndFaceDelete() async throws {
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("batch")
            let items: [[String: Any]] = [
                ["external_id": "obama", "name": "Barack Obama", "image": try testImage("obama.jpg").base64],
                ["external_id": "biden", "image": try testImage("biden.jpg").base64],
                ["external_id": "nobody", "image": "not base64!"],
            ]
            let result = try await c.json(
                .POST, "/v1/collections/\(collection)/batch/enroll",
                template: "/v1/collections/{collection}/batch/enroll", ["items": items])
            #expect(result[path: "data.succeeded"] as? Int == 2)
            #expect(result[path: "data.failed"] as? Int == 1)
            #expect(result[path: "data.items.2.error.code"] as? String == "INVALID_IMAGE_FORMAT")
            let faces = try await c.identify(collection, "obama_and_biden.jpg")
            #expect(Set(faces.filter { !$0.2 }.compactMap(\.0)) == ["obama", "biden"], "\(faces)")

            // mode=all stores every face of the group photo for one subject.
            let group = try await c.createSubject(collection, "group")
            let all = try await c.upload(
                "/v1/collections/\(collection)/subjects/\(group)/faces",
                template: "/v1/collections/{collection}/subjects/{subject}/faces", file: "obama_and_biden.jpg",
                fields: ["mode": "all"])
            let stored = try #require(all[path: "data.faces"] as? [[String: Any]])
            #expect(stored.count == 3)
            let faceID = try #require(stored.first?["id"] as? String)
            let gone = try await c.json(
                .DELETE, "/v1/collections/\(collection)/subjects/\(group)/faces/\(faceID)",
                template: "/v1/collections/{collection}/subjects/{subject}/faces/{face}")
            #expect(gone[path: "data.deleted"] as? Bool == true)
            let subject = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects/\(group)",
                template: "/v1/collections/{collection}/subjects/{subject}")
            #expect((subject[path: "data.faces"] as? [Any])?.count == 2)
            let index = try await app.gallery.index(UUID(uuidString: collection)!, model: try testEmbeddingModel())
            #expect(index.count == 4, "2 batch faces + 2 remaining group faces")
        }
    }

    /// Rows of another embedding model are never compared with the current one.
    @Test func identifyUsesOnlyTheCurrentEmbeddingModel() async throws {
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("models")
            let subject = try await c.createSubject(collection, "obama")
            _ = try await c.enrol(collection, subject, "obama.jpg")
            let sql = try app.databaseRouter.primary as! any SQLDatabase
            try await sql.raw("UPDATE faces SET embedding_model_version = 'older'").run()
            // A new version counter makes the index reload.
            _ = try await app.gallery.bumpVersion(UUID(uuidString: collection)!, on: app.databaseRouter.primary)
            await app.gallery.pollVersions()
            let faces = try await c.identify(collection, "obama2.jpg")
            #expect(faces.first?.2 == true, "an old-model face must not match: \(faces)")
        }
    }

    @Test func keyRotationReencryptsEveryRow() async throws {
        let oldKey = SymmetricKey(size: .bits256).base64
        let newKey = SymmetricKey(size: .bits256).base64
        let database = Self.sharedSQLite()
        defer { database.remove() }
        let env = database.env.merging(["FACESOCIAL_DATA_KEY": oldKey, "FACESOCIAL_DATA_KEY_ID": "old"]) { $1 }
        var collection = ""
        try await withFaceSocial(env) { app in
            let c = GalleryClient(app: app)
            collection = try await c.createCollection("rotation")
            let subject = try await c.createSubject(collection, "obama")
            _ = try await c.enrol(collection, subject, "obama.jpg")
            // An unnamed face too: its row is sealed the same way.
            _ = try await c.upload(
                "/v1/collections/\(collection)/faces", template: "/v1/collections/{collection}/faces", file: "biden.jpg"
            )
        }
        let rotated = env.merging([
            "FACESOCIAL_DATA_KEY": newKey, "FACESOCIAL_DATA_KEY_ID": "new", "FACESOCIAL_DATA_KEYS_OLD": "old:\(oldKey)",
        ]) { $1 }
        let report = try await DataMaintenance.rotateDataKeys(try testConfig(rotated))
        #expect(report.resealed == 2 && report.keyID == "new")
        // Without the old key the server still opens every row: they are all under the new one.
        let newOnly = env.merging(["FACESOCIAL_DATA_KEY": newKey, "FACESOCIAL_DATA_KEY_ID": "new"]) { $1 }
        try await withFaceSocial(newOnly) { app in
            let c = GalleryClient(app: app)
            let faces = try await c.identify(collection, "obama2.jpg")
            #expect(faces.first?.0 == "obama" && faces.first?.2 == false, "\(faces)")
            // Clustering opens the unnamed rows: biden's second photo joins the first one's cluster.
            let second = try await c.upload(
                "/v1/collections/\(collection)/faces", template: "/v1/collections/{collection}/faces",
                file: "biden_biden2.jpg", fields: ["quality_filter": "none"])
            #expect((second[path: "data.faces"] as? [[String: Any]])?.first?["merged"] as? [String] == [])
            let clusters = try await c.json(
                .GET, "/v1/collections/\(collection)/clusters", template: "/v1/collections/{collection}/clusters")
            #expect(
                (clusters[path: "data.items"] as? [[String: Any]])?.map { $0["size"] as? Int } == [2], "\(clusters)")
        }
        // And under a wrong key nothing opens.
        let wrong = env.merging(["FACESOCIAL_DATA_KEY": SymmetricKey(size: .bits256).base64]) { $1 }
        try await withFaceSocial(wrong) { app in
            await #expect(throws: DataCipher.Failure.self) {
                _ = try await app.gallery.index(UUID(uuidString: collection)!, model: try testEmbeddingModel())
            }
        }
    }

    @Test func auditRowsAreAppendOnly() async throws {
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("audit")
            let subject = try await c.createSubject(collection, "someone")
            _ = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects/\(subject)/export",
                template: "/v1/collections/{collection}/subjects/{subject}/export")
            let sql = try app.databaseRouter.primary as! any SQLDatabase
            await #expect(throws: (any Error).self) { try await sql.raw("DELETE FROM audit_events").run() }
            await #expect(throws: (any Error).self) { try await sql.raw("UPDATE audit_events SET actor = 'x'").run() }
            // The export's row (sign-ins and collection changes write rows of their own).
            // The id the API answered is the audit row's resource id, as it stands (both lower-case).
            let count = try await sql.raw(
                "SELECT COUNT(*) AS n FROM audit_events WHERE resource_id = \(bind: subject)"
            ).first()?.decode(column: "n", as: Int.self)
            #expect(count == 1)
        }
    }

    /// Every id in gallery answers is a lower-case UUID, the form of audit resource ids, user
    /// collection scopes, API key and user ids and request ids (JSONEncoder alone writes upper-case).
    @Test func galleryIDsAreLowerCaseLikeEveryOtherID() async throws {
        try await withFaceSocial { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("ids")
            let subject = try await c.createSubject(collection, "obama")
            let enrolled = try await c.enrol(collection, subject, "obama.jpg")
            let read = try await c.json(
                .GET, "/v1/collections/\(collection)/subjects/\(subject)",
                template: "/v1/collections/{collection}/subjects/{subject}")
            let ids: [Any?] = [
                collection, subject, enrolled[path: "data.subject_id"], enrolled[path: "data.faces.0.id"],
                enrolled[path: "data.faces.0.subject_id"], read[path: "data.id"], read[path: "data.collection_id"],
            ]
            for id in ids {
                let text = try #require(id as? String)
                #expect(UUID(uuidString: text) != nil && text == text.lowercased(), "\(text)")
            }
        }
    }
}

extension [UInt8] {
    var base64: String { Data(self).base64EncodedString() }
}

extension SymmetricKey {
    var base64: String { withUnsafeBytes { Data($0).base64EncodedString() } }
}
