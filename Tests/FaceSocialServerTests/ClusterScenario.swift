import FaceKit
import FaceSearch
import Fluent
import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

extension GalleryScenario {
    /// The test photos enrolled without names fall into one cluster per identity and the stranger
    /// stays alone; a face enrolled after the in-memory index is gone joins its identity's cluster
    /// from the rows; naming clusters (new and existing subject) makes them searchable at once;
    /// identify keeps unknown faces only when asked; a cluster can be erased; bad requests are 4xx.
    static func clustersOfUnnamedFaces(_ app: Application) async throws {
        let c = GalleryClient(app: app)
        let collection = try await c.createCollection("clusters-\(UUID().uuidString.prefix(8))")
        let base = "/v1/collections/\(collection)"
        let identities: [String: [String]] = [
            "obama": ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_small.jpg", "obama-1080p.jpg"],
            "biden": ["biden.jpg", "biden_biden2.jpg"],
            "kit_harington": ["kit_harington_john1.jpeg", "kit_harington_john2.jpeg"],
            "rose_leslie": ["rose_leslie_img1.jpg", "rose_leslie_img2.jpg"],
            "stranger": ["tom_hanks.png"],
        ]
        func enrolUnnamed(_ file: String, expect status: HTTPResponseStatus = .created) async throws -> [String: Any] {
            try await c.upload(
                "\(base)/faces", template: "/v1/collections/{collection}/faces", file: file,
                fields: ["quality_filter": "none"], expect: status)
        }
        // Which face each photo gave; rose_leslie_img2 waits for the second part.
        var faceOf: [String: String] = [:]
        for (_, files) in identities.sorted(by: { $0.key < $1.key }) {
            for file in files where file != "rose_leslie_img2.jpg" {
                let enrolled = try await enrolUnnamed(file)
                let faces = try #require(enrolled[path: "data.faces"] as? [[String: Any]], "\(file): \(enrolled)")
                #expect(faces.count == 1, "\(file): \(enrolled)")
                faceOf[file] = try #require(faces.first?[path: "face.id"] as? String)
            }
        }
        func clusters() async throws -> [String: Set<String>] {
            let page = try await c.json(
                .GET, "\(base)/clusters?faces=100", template: "/v1/collections/{collection}/clusters")
            let items = try #require(page[path: "data.items"] as? [[String: Any]])
            #expect(page[path: "data.total"] as? Int == items.count)
            var found: [String: Set<String>] = [:]
            for item in items {
                let id = try #require(item["id"] as? String)
                let faces = (item["faces"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                #expect(item["size"] as? Int == faces.count)
                found[id] = Set(faces)
            }
            // Largest first.
            let sizes = items.compactMap { $0["size"] as? Int }
            #expect(sizes == sizes.sorted(by: >), "\(sizes)")
            return found
        }
        /// The cluster holding each identity's faces, checking that no cluster mixes identities.
        func clusterOfIdentity(_ found: [String: Set<String>]) throws -> [String: String] {
            var result: [String: String] = [:]
            for (person, files) in identities {
                let faces = Set(files.compactMap { faceOf[$0] })
                let holding = found.filter { !$0.value.isDisjoint(with: faces) }
                #expect(holding.count == 1, "\(person) is split over \(holding.count) clusters")
                let (id, members) = try #require(holding.first)
                #expect(members == faces, "\(person)'s cluster holds \(members.count) faces, expected \(faces.count)")
                result[person] = id
            }
            return result
        }
        var found = try await clusters()
        #expect(found.count == 5, "one cluster per identity and the stranger alone: \(found.mapValues(\.count))")
        var clusterOf = try clusterOfIdentity(found)
        #expect(found[clusterOf["stranger"]!]?.count == 1)

        // The same image again is refused before any model runs.
        let duplicate = try await enrolUnnamed("obama.jpg", expect: .conflict)
        #expect(duplicate[path: "error.code"] as? String == "DUPLICATE_IMAGE")

        // A face arriving after the in-memory index is gone (a restart) joins its identity's
        // cluster from the stored rows.
        app.gallery.clusterIndexes.forget(try #require(UUID(uuidString: collection)))
        let loadsBefore = app.gallery.clusterIndexes.loadCount
        let rose2 = try await enrolUnnamed("rose_leslie_img2.jpg")
        #expect(app.gallery.clusterIndexes.loadCount == loadsBefore + 1)
        faceOf["rose_leslie_img2.jpg"] =
            try #require(rose2[path: "data.faces"] as? [[String: Any]])
            .first?[path: "face.id"] as? String
        #expect(
            (rose2[path: "data.faces"] as? [[String: Any]])?.first?[path: "face.cluster_id"] as? String
                == clusterOf["rose_leslie"])
        found = try await clusters()
        clusterOf = try clusterOfIdentity(found)
        #expect(found.count == 5)

        // One cluster alone, all its faces.
        let obamaCluster = try await c.json(
            .GET, "\(base)/clusters/\(clusterOf["obama"]!)", template: "/v1/collections/{collection}/clusters/{cluster}"
        )
        #expect(obamaCluster[path: "data.size"] as? Int == 5)

        // Naming: biden's cluster becomes a new subject, obama's joins an existing one.
        let assignTemplate = "/v1/collections/{collection}/clusters/{cluster}/assign"
        let biden = try await c.json(
            .POST, "\(base)/clusters/\(clusterOf["biden"]!)/assign", template: assignTemplate,
            ["external_id": "biden", "name": "Joe Biden"])
        #expect(biden[path: "data.faces_moved"] as? Int == 2)
        #expect(biden[path: "data.subject.face_count"] as? Int == 2)
        let obamaSubject = try await c.createSubject(collection, "obama")
        let obama = try await c.json(
            .POST, "\(base)/clusters/\(clusterOf["obama"]!)/assign", template: assignTemplate,
            ["subject_id": obamaSubject])
        #expect(obama[path: "data.subject.id"] as? String == obamaSubject)
        #expect(obama[path: "data.faces_moved"] as? Int == 5)
        found = try await clusters()
        #expect(found.count == 3, "\(found.mapValues(\.count))")
        // Searchable at once: the group photo finds both.
        let known = try await c.identify(collection, "obama_and_biden.jpg").filter { !$0.2 }.compactMap(\.0)
        #expect(Set(known) == ["obama", "biden"], "\(known)")

        // Refused: neither or both targets, an external id that is taken, an unknown cluster.
        for (payload, status) in [
            ([:], HTTPStatus.badRequest),
            (["subject_id": obamaSubject, "external_id": "x"], .badRequest),
            (["subject_id": "not-a-uuid"], .badRequest),
            (["external_id": "obama"], .conflict),
        ] as [([String: Any], HTTPStatus)] {
            let refused = try await c.json(
                .POST, "\(base)/clusters/\(clusterOf["kit_harington"]!)/assign", template: assignTemplate, payload,
                expect: status)
            #expect(refused[path: "error.code"] != nil)
        }
        _ = try await c.json(
            .POST, "\(base)/clusters/\(UUID())/assign", template: assignTemplate, ["external_id": "nobody"],
            expect: .notFound)
        _ = try await c.json(
            .GET, "\(base)/clusters?limit=0", template: "/v1/collections/{collection}/clusters", expect: .badRequest)
        #expect(found.count == 3, "refused requests changed nothing")

        // Identify keeps unknown faces only when asked: the group photo's six strangers.
        let groupPlain = try await c.upload(
            "\(base)/identify", template: "/v1/collections/{collection}/identify", file: "group6_t1.jpg",
            expect: .ok)
        #expect((groupPlain[path: "data.faces"] as? [[String: Any]])?.allSatisfy { $0["kept"] == nil } == true)
        #expect(try await clusters().count == 3)
        let group = try await c.upload(
            "\(base)/identify", template: "/v1/collections/{collection}/identify", file: "group6_t1.jpg",
            fields: ["keep_unmatched": "true"], expect: .ok)
        let keptFaces = (group[path: "data.faces"] as? [[String: Any]] ?? []).compactMap {
            $0["kept"] as? [String: Any]
        }
        #expect(!keptFaces.isEmpty && keptFaces.allSatisfy { $0["source"] as? String == "identify" })
        found = try await clusters()
        #expect(found.count == 3 + keptFaces.count, "each stranger of the group photo alone")
        // The same photo again keeps nothing more.
        let again = try await c.upload(
            "\(base)/identify", template: "/v1/collections/{collection}/identify", file: "group6_t1.jpg",
            fields: ["keep_unmatched": "true"], expect: .ok)
        #expect((again[path: "data.faces"] as? [[String: Any]])?.allSatisfy { $0["kept"] == nil } == true)
        #expect(try await clusters().count == 3 + keptFaces.count)

        // Erasing the stranger's cluster.
        let erased = try await c.json(
            .DELETE, "\(base)/clusters/\(clusterOf["stranger"]!)",
            template: "/v1/collections/{collection}/clusters/{cluster}")
        #expect(erased[path: "data.faces_erased"] as? Int == 1)
        _ = try await c.json(
            .GET, "\(base)/clusters/\(clusterOf["stranger"]!)",
            template: "/v1/collections/{collection}/clusters/{cluster}", expect: .notFound)
        #expect(try await clusters().count == 2 + keptFaces.count)

        // Erasing one face of a cluster: rose_leslie's keeps its id with the other face; an
        // unknown face, or one of another cluster, is 404; the last face takes the cluster along.
        let faceTemplate = "/v1/collections/{collection}/clusters/{cluster}/faces/{face}"
        let rose = clusterOf["rose_leslie"]!
        let roseLeft = try await c.json(
            .DELETE, "\(base)/clusters/\(rose)/faces/\(faceOf["rose_leslie_img2.jpg"]!)", template: faceTemplate)
        #expect(roseLeft[path: "data.id"] as? String == faceOf["rose_leslie_img2.jpg"])
        let roseRemains = roseLeft[path: "data.clusters"] as? [[String: Any]] ?? []
        #expect(roseRemains.count == 1 && roseRemains.first?["id"] as? String == rose, "\(roseLeft)")
        #expect(roseRemains.first?["size"] as? Int == 1)
        for face in [faceOf["rose_leslie_img2.jpg"]!, faceOf["kit_harington_john1.jpeg"]!, UUID().uuidString] {
            _ = try await c.json(
                .DELETE, "\(base)/clusters/\(rose)/faces/\(face)", template: faceTemplate, expect: .notFound)
        }
        let roseGone = try await c.json(
            .DELETE, "\(base)/clusters/\(rose)/faces/\(faceOf["rose_leslie_img1.jpg"]!)", template: faceTemplate)
        #expect((roseGone[path: "data.clusters"] as? [Any])?.isEmpty == true, "\(roseGone)")
        _ = try await c.json(
            .GET, "\(base)/clusters/\(rose)", template: "/v1/collections/{collection}/clusters/{cluster}",
            expect: .notFound)
        #expect(try await clusters().count == 1 + keptFaces.count)

        // A face that was the only link of its cluster: two faces unlike each other (cosine 0)
        // joined through a third like both (0.71). Erasing the third splits the cluster in two, the
        // first keeping its id; the next face like the first joins it, from the rows.
        let bridged = try await c.createCollection("clusters-split-\(UUID().uuidString.prefix(8))")
        let bridgedID = try #require(UUID(uuidString: bridged))
        let store = GalleryStore(gallery: app.gallery)
        let model = EmbeddingModelKey(id: "sface", version: "2021dec")
        func unnamed(_ vector: [Float]) throws -> (row: UnnamedFace, vector: [Float]) {
            let row = try UnnamedFace(
                face: Box(x: 0, y: 0, width: 100, height: 100), quality: 0.9, embedding: vector,
                model: (model.id, model.version), collectionID: bridgedID,
                imageSHA256: String(repeating: "0", count: 64), cipher: app.gallery.cipher)
            row.source = "enrol"
            return (row, vector)
        }
        let a1 = try unnamed(ClusteringPolicyTests.unit([0: 1]))
        let a2 = try unnamed(ClusteringPolicyTests.unit([1: 1]))
        let link = try unnamed(ClusteringPolicyTests.unit([0: 1, 1: 1]))
        let placed = try await store.storeUnnamed(
            [a1, link, a2], collectionID: bridgedID, imageSHA256: String(repeating: "0", count: 64), model: model,
            threshold: Thresholds.verify)
        #expect(Set(placed.map(\.clusterID)).count == 1, "one cluster through the link")
        let split = try await c.json(
            .DELETE, "/v1/collections/\(bridged)/clusters/\(placed[0].clusterID)/faces/\(link.row.id!)",
            template: faceTemplate)
        let parts = split[path: "data.clusters"] as? [[String: Any]] ?? []
        #expect(parts.map { $0["size"] as? Int } == [1, 1], "\(split)")
        #expect(parts.first?["id"] as? String == placed[0].clusterID.uuidString.lowercased())
        let rows = try await UnnamedFace.query(on: app.db).filter(\.$collectionID == bridgedID).all()
        let clusterOfRow = Dictionary(uniqueKeysWithValues: rows.map { ($0.id!, $0.clusterID) })
        #expect(clusterOfRow[a1.row.id!] == placed[0].clusterID)
        #expect(clusterOfRow[a2.row.id!] != placed[0].clusterID)
        #expect(clusterOfRow[a2.row.id!]?.uuidString.lowercased() == parts.last?["id"] as? String)
        let joined = try await store.storeUnnamed(
            [try unnamed(ClusteringPolicyTests.unit([0: 1, 5: 0.2]))], collectionID: bridgedID,
            imageSHA256: String(repeating: "1", count: 64), model: model, threshold: Thresholds.verify)
        #expect(joined.first?.clusterID == placed[0].clusterID)
        #expect(joined.first?.merged.isEmpty == true, "a2 stays apart")

        // Concurrent enrolments into one collection take turns (each locks the collection's
        // counter row first), so three photos of one person sent at once form one cluster, not
        // three. A 503 (SQLite busy with the other write) is retried, as a client would.
        let other = try await c.createCollection("clusters-race-\(UUID().uuidString.prefix(8))")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for file in ["obama.jpg", "obama2.jpg", "obama3.jpg"] {
                group.addTask {
                    for attempt in 0..<20 {
                        var form = Multipart()
                        form.file("image", try testImage(file))
                        var headers = form.headers
                        headers.add(contentsOf: try await c.auth())
                        var status = HTTPStatus.ok
                        try await app.testing().test(
                            .POST, "/v1/collections/\(other)/faces", headers: headers, body: form.body()
                        ) { res in status = res.status }
                        if status == .created { return }
                        #expect(status == .serviceUnavailable, "\(file): \(status)")
                        try await Task.sleep(for: .milliseconds(100 * (attempt + 1)))
                    }
                    Issue.record("\(file) was not enrolled")
                }
            }
            try await group.waitForAll()
        }
        let raced = try await c.json(
            .GET, "/v1/collections/\(other)/clusters", template: "/v1/collections/{collection}/clusters")
        #expect((raced[path: "data.items"] as? [[String: Any]])?.map { $0["size"] as? Int } == [3], "\(raced)")
        // Erasing the collection erases its unnamed faces too.
        let gone = try await c.json(.DELETE, "/v1/collections/\(other)", template: "/v1/collections/{collection}")
        #expect(gone[path: "data.faces_erased"] as? Int == 3)
        let otherID = try #require(UUID(uuidString: other))
        #expect(try await UnnamedFace.query(on: app.db).filter(\.$collectionID == otherID).count() == 0)

        // Bulk import without names: batch items without external_id enrol every face of their
        // image unnamed (JSON), as does a multipart part whose external_ids entry is empty.
        let imported = try await c.createCollection("clusters-import-\(UUID().uuidString.prefix(8))")
        let items: [[String: Any]] = [
            ["image": Data(try testImage("kit_harington_john1.jpeg")).base64EncodedString()],
            ["image": Data(try testImage("kit_harington_john2.jpeg")).base64EncodedString()],
            ["external_id": "rose", "image": Data(try testImage("rose_leslie_img1.jpg")).base64EncodedString()],
        ]
        let batch = try await c.json(
            .POST, "/v1/collections/\(imported)/batch/enroll", template: "/v1/collections/{collection}/batch/enroll",
            ["items": items])
        let results = try #require(batch[path: "data.items"] as? [[String: Any]])
        #expect(batch[path: "data.succeeded"] as? Int == 3, "\(batch)")
        let kitClusters = results.prefix(2).map {
            ($0[path: "unnamed.faces"] as? [[String: Any]])?.first?[path: "face.cluster_id"] as? String
        }
        #expect(kitClusters[0] != nil && kitClusters[0] == kitClusters[1], "\(results.prefix(2))")
        #expect(results[2][path: "data.subject_id"] != nil && results[2]["unnamed"] == nil)
        var form = Multipart()
        form.file("first", try testImage("obama.jpg"), filename: "obama.jpg")
        form.file("second", try testImage("obama2.jpg"), filename: "obama2.jpg")
        form.field("external_ids", "obama,")
        var headers = form.headers
        headers.add(contentsOf: try await c.auth())
        try await app.testing().test(
            .POST, "/v1/collections/\(imported)/batch/enroll", headers: headers, body: form.body()
        ) { res in
            #expect(res.status == .ok, "\(res.body.string.prefix(300))")
            expectConforms("POST", "/v1/collections/{collection}/batch/enroll", res)
            let answer = body(res)
            #expect(
                answer[path: "data.items"].flatMap { ($0 as? [[String: Any]])?.first?["external_id"] } as? String
                    == "obama")
            #expect(
                ((answer[path: "data.items"] as? [[String: Any]])?.last?[path: "unnamed.faces"] as? [Any])?.count == 1)
        }
        let importedClusters = try await c.json(
            .GET, "/v1/collections/\(imported)/clusters", template: "/v1/collections/{collection}/clusters")
        #expect(
            (importedClusters[path: "data.items"] as? [[String: Any]])?.map { $0["size"] as? Int } == [2, 1],
            "kit's pair and obama2 (obama.jpg was named): \(importedClusters)")
    }
}

@Suite("Clustering policy")
struct ClusteringPolicyTests {
    /// A unit vector along `axes` (equal parts), 128-d.
    static func unit(_ axes: [Int: Float]) -> [Float] {
        var v = [Float](repeating: 0, count: 128)
        for (axis, value) in axes { v[axis] = value }
        let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
        return v.map { $0 / norm }
    }

    static func permutations(_ items: [Int]) -> [[Int]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i in
            permutations(Array(items[..<i] + items[(i + 1)...])).map { [items[i]] + $0 }
        }
    }

    /// The clusters are the connected groups of same-person pairs in every order of arrival: a1
    /// and a2 do not resemble each other (cosine 0) but both resemble the bridge (0.71), so all
    /// three end up together even when a1 and a2 came first as two clusters.
    @Test func clustersDoNotDependOnOrder() throws {
        let faces: [(String, [Float])] = [
            ("a1", Self.unit([0: 1])), ("a2", Self.unit([1: 1])), ("bridge", Self.unit([0: 1, 1: 1])),
            ("b1", Self.unit([10: 1])), ("b2", Self.unit([10: 1, 11: 0.3])), ("c", Self.unit([20: 1])),
        ]
        var partitions: Set<Set<Set<String>>> = []
        var merges = 0
        for order in Self.permutations(Array(faces.indices)) {
            var index = EmbeddingIndex(dimension: 128)
            var clusterOf: [String: UUID] = [:]
            for i in order {
                let (name, vector) = faces[i]
                let placed = FaceClustering.place(vector, faceID: UUID(), in: &index, threshold: 0.6)
                for merged in placed.merged {
                    merges += 1
                    for (n, c) in clusterOf where c == merged { clusterOf[n] = placed.clusterID }
                }
                clusterOf[name] = placed.clusterID
            }
            partitions.insert(Set(Dictionary(grouping: clusterOf.keys, by: { clusterOf[$0]! }).values.map(Set.init)))
        }
        #expect(partitions == [[["a1", "a2", "bridge"], ["b1", "b2"], ["c"]]], "\(partitions)")
        #expect(merges > 0, "some orders bring a1 and a2 in as two clusters first")
    }

    /// What is left when a face leaves a cluster: the connected groups of the others, largest first.
    @Test func componentsAreTheConnectedGroups() throws {
        let a1 = Self.unit([0: 1])
        let a2 = Self.unit([1: 1])
        let bridge = Self.unit([0: 1, 1: 1])
        let b = [Self.unit([10: 1]), Self.unit([10: 1, 11: 0.3])]
        #expect(FaceClustering.components([a1, bridge, a2], threshold: 0.6) == [[0, 1, 2]])
        #expect(FaceClustering.components([a1, a2], threshold: 0.6) == [[0], [1]])
        #expect(FaceClustering.components([a1, b[0], a2, b[1]], threshold: 0.6) == [[1, 3], [0], [2]])
        #expect(FaceClustering.components([a1, b[0], bridge, a2, b[1]], threshold: 0.6) == [[0, 2, 3], [1, 4]])
        #expect(FaceClustering.components([], threshold: 0.6).isEmpty)
    }

    /// A face that links two clusters merges them into the larger, which keeps its id.
    @Test func aLinkingFaceMergesIntoTheLarger() throws {
        var index = EmbeddingIndex(dimension: 128)
        let small = FaceClustering.place(Self.unit([1: 1]), faceID: UUID(), in: &index, threshold: 0.6)
        let large = FaceClustering.place(Self.unit([0: 1]), faceID: UUID(), in: &index, threshold: 0.6)
        _ = FaceClustering.place(Self.unit([0: 1, 2: 0.1]), faceID: UUID(), in: &index, threshold: 0.6)
        #expect(small.clusterID != large.clusterID)
        let linking = FaceClustering.place(Self.unit([0: 1, 1: 1]), faceID: UUID(), in: &index, threshold: 0.6)
        #expect(linking.clusterID == large.clusterID)
        #expect(linking.merged == [small.clusterID])
        #expect(index.faceCount(subjectID: large.clusterID) == 4)
        #expect(index.faceCount(subjectID: small.clusterID) == 0)
    }
}
