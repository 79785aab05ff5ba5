import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

extension GalleryScenario {
    /// Search by a stored face and identify by an embedding the caller has, on real photos: the
    /// same requests on SQLite and on PostgreSQL.
    static func searchByFaceAndByEmbedding(_ app: Application) async throws {
        let c = GalleryClient(app: app)
        let collection = try await c.createCollection("search-\(UUID().uuidString.prefix(8))")
        var subjects: [String: String] = [:]
        var faces: [String: String] = [:]
        // Two subjects are the same person (a duplicate to find); rose_leslie is nobody else.
        for (person, file) in [
            ("obama", "obama.jpg"), ("obama_again", "obama2.jpg"), ("biden", "biden.jpg"),
            ("rose_leslie", "rose_leslie_img1.jpg"),
        ] {
            subjects[person] = try await c.createSubject(collection, person)
            let enrolled = try await c.enrol(collection, subjects[person]!, file)
            faces[person] = try #require(enrolled[path: "data.faces.0.id"] as? String)
        }
        let search = "/v1/collections/{collection}/faces/{face}/search"
        func searchPath(_ face: String, in c: String = collection, _ query: String = "") -> String {
            "/v1/collections/\(c)/faces/\(face)/search\(query)"
        }

        // The duplicate is the best match; the face's own subject is left out.
        let found = try await c.json(.POST, searchPath(faces["obama"]!, "?top_k=3"), template: search)
        let matches = try #require(found[path: "data.matches"] as? [[String: Any]])
        #expect(matches.count == 3, "\(matches)")
        #expect(matches.first?["external_id"] as? String == "obama_again", "\(matches)")
        #expect(matches.first?["is_match"] as? Bool == true)
        #expect(!matches.contains { $0["external_id"] as? String == "obama" }, "own subject left out: \(matches)")
        #expect(matches.dropFirst().allSatisfy { $0["is_match"] as? Bool == false }, "\(matches)")
        #expect(found[path: "data.subject_id"] as? String == subjects["obama"])
        #expect(found[path: "data.face_id"] as? String == faces["obama"])
        #expect(found[path: "data.unknown"] as? Bool == false)
        #expect(found[path: "data.gallery_size"] as? Int == 4)
        print("search by obama's face: \(matches.map { ($0["external_id"]!, $0["similarity"]!) })")
        // Nobody else is rose_leslie: unknown. The threshold can be set per call.
        let rose = try await c.json(.POST, searchPath(faces["rose_leslie"]!), template: search)
        #expect(rose[path: "data.unknown"] as? Bool == true, "\(rose)")
        let loose = try await c.json(.POST, searchPath(faces["rose_leslie"]!, "?threshold=-1"), template: search)
        #expect(loose[path: "data.unknown"] as? Bool == false && loose[path: "data.threshold_used"] as? Double == -1)
        // Reading a stored embedding is audited.
        let audited = try await auditRows(app, action: "face.search")
        #expect(audited.contains { $0.resourceID == faces["obama"] }, "\(audited.map(\.resourceID))")

        // Not in this collection, unknown, malformed: 404; a bad parameter: 400 naming it.
        let other = try await c.createCollection("other-\(UUID().uuidString.prefix(8))")
        _ = try await c.json(.POST, searchPath(faces["obama"]!, in: other), template: search, expect: .notFound)
        _ = try await c.json(.POST, searchPath(UUID().uuidString), template: search, expect: .notFound)
        _ = try await c.json(.POST, searchPath("not-a-face"), template: search, expect: .notFound)
        let badK = try await c.json(
            .POST, searchPath(faces["obama"]!, "?top_k=0"), template: search, expect: .badRequest)
        #expect(badK[path: "error.details.field"] as? String == "top_k")

        // Identify by embedding: obama2's embedding (from the export) finds both obama subjects.
        let export = try await c.json(
            .GET, "/v1/collections/\(collection)/subjects/\(subjects["obama_again"]!)/export",
            template: "/v1/collections/{collection}/subjects/{subject}/export")
        let embedding = try #require(export[path: "data.faces.0.embedding"] as? [Double])
        let identify = "/v1/collections/{collection}/identify"
        let path = "/v1/collections/\(collection)/identify"
        let byEmbedding = try await c.json(
            .POST, path, template: identify, ["embedding": embedding, "model": "sface", "top_k": 2])
        let top = try #require(byEmbedding[path: "data.faces.0.matches"] as? [[String: Any]])
        #expect(top.map { $0["external_id"] as? String } == ["obama_again", "obama"], "\(top)")
        #expect((top.first?["similarity"] as? Double ?? 0) > 0.999, "its own stored embedding: \(top)")
        #expect(top.allSatisfy { $0["is_match"] as? Bool == true })
        #expect(byEmbedding[path: "data.faces.0.bbox"] == nil && byEmbedding[path: "data.image"] == nil)
        // The model as answers name it works too.
        let label = try #require(byEmbedding[path: "data.model"] as? String)
        let byLabel = try await c.json(.POST, path, template: identify, ["embedding": embedding, "model": label])
        #expect(byLabel[path: "data.faces.0.matches.0.external_id"] as? String == "obama_again")
        // Scored by template (the mean of a subject's faces): obama gets a second face, so its
        // template differs from either face; both modes name the mode they used.
        let obama3 = try await c.enrol(collection, subjects["obama"]!, "obama3.jpg")
        #expect((obama3[path: "data.faces"] as? [Any])?.count == 1)
        let byBest = try await c.json(.POST, path, template: identify, ["embedding": embedding, "model": "sface"])
        let byTemplate = try await c.json(
            .POST, path, template: identify, ["embedding": embedding, "model": "sface", "match_mode": "template"])
        #expect(byBest[path: "data.match_mode"] as? String == "best")
        #expect(byTemplate[path: "data.match_mode"] as? String == "template")
        func similarity(_ answer: [String: Any], _ who: String) -> Double? {
            (answer[path: "data.faces.0.matches"] as? [[String: Any]])?
                .first { $0["external_id"] as? String == who }?["similarity"] as? Double
        }
        // The template similarity is the query against the normalised mean of obama's two stored
        // (unit) embeddings, as the export gives them; the best-face one is the larger single one.
        let obamaExport = try await c.json(
            .GET, "/v1/collections/\(collection)/subjects/\(subjects["obama"]!)/export",
            template: "/v1/collections/{collection}/subjects/{subject}/export")
        let stored = try #require(obamaExport[path: "data.faces"] as? [[String: Any]]).compactMap {
            ($0["embedding"] as? [Double]).map(unit)
        }
        #expect(stored.count == 2)
        let query = unit(embedding)
        let mean = unit(zip(stored[0], stored[1]).map { $0 + $1 })
        func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        let expectedBest = stored.map { dot(query, $0) }.max()!
        let expectedTemplate = dot(query, mean)
        let best = try #require(similarity(byBest, "obama"))
        let template = try #require(similarity(byTemplate, "obama"))
        #expect(abs(best - expectedBest) < 1e-3, "best face \(best), expected \(expectedBest)")
        #expect(abs(template - expectedTemplate) < 1e-3, "template \(template), expected \(expectedTemplate)")
        print("obama for obama2's embedding: best face \(best), template \(template)")
        // A subject with one face scores the same either way.
        #expect(abs((similarity(byTemplate, "obama_again") ?? 0) - (similarity(byBest, "obama_again") ?? 1)) < 1e-3)
        let searched = try await c.json(
            .POST, searchPath(faces["obama_again"]!, "?match_mode=template"), template: search)
        #expect(searched[path: "data.matches.0.external_id"] as? String == "obama")
        #expect(searched[path: "data.match_mode"] as? String == "template")
        let badMode = try await c.json(
            .POST, searchPath(faces["obama"]!, "?match_mode=mean"), template: search, expect: .badRequest)
        #expect(badMode[path: "error.details.field"] as? String == "match_mode")

        // A wrong length, a wrong or missing model, a model without an embedding: 400 naming the field.
        for (payload, field) in [
            (["embedding": Array(embedding.prefix(100)), "model": "sface"], "embedding"),
            (["embedding": embedding + embedding, "model": "sface"], "embedding"),
            (["embedding": embedding, "model": "arcface"], "model"),
            (["embedding": embedding, "model": "sface@1999jan"], "model"),
            (["embedding": embedding], "model"),
            (["model": "sface"], "model"),
        ] as [([String: Any], String)] {
            let refused = try await c.json(.POST, path, template: identify, payload, expect: .badRequest)
            #expect(refused[path: "error.details.field"] as? String == field, "\(payload.keys): \(refused)")
        }
    }
}

private func unit(_ v: [Double]) -> [Double] {
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / norm }
}
