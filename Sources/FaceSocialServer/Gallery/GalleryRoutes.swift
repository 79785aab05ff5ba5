import Crypto
import FaceKit
import Fluent
import Foundation
import SQLKit
import Vapor

/// Collections, subjects, enrolment, identification and the privacy routes (erase, export).
/// Listings and gallery loads read from a replica when one is healthy; every write, and every
/// read a write depends on, uses the primary.
struct GalleryRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig
    let gallery: GalleryService

    var analysis: AnalysisRoutes { AnalysisRoutes(faces: faces, config: config) }
    var router: DatabaseRouter { gallery.router }

    /// The embedding model enrolments and searches use now.
    var model: EmbeddingModelKey {
        EmbeddingModelKey(id: "sface", version: faces.registry.store.manifest.entry("sface")?.version ?? "unknown")
    }

    func boot(routes: any RoutesBuilder) throws {
        let read = routes.grouped(GalleryAccess(permission: .collectionsRead))
        let write = routes.grouped(GalleryAccess(permission: .collectionsWrite))
        let enrol = routes.grouped(GalleryAccess(permission: .faceEnroll))
        let collections = ["v1", "collections"] as [PathComponent]
        let collection = collections + [":collection"]
        let subject = collection + ["subjects", ":subject"]
        write.post(collections, use: createCollection)
        read.get(collections, use: listCollections)
        read.get(collection, use: getCollection)
        write.delete(collection, use: deleteCollection)
        read.on(.POST, collection + ["identify"], body: .stream, use: identify)
        enrol.on(.POST, collection + ["batch", "enroll"], body: .stream, use: batchEnrol)
        write.post(collection + ["subjects"], use: createSubject)
        read.get(collection + ["subjects"], use: listSubjects)
        read.get(subject, use: getSubject)
        write.patch(subject, use: updateSubject)
        write.delete(subject, use: deleteSubject)
        read.get(subject + ["export"], use: exportSubject)
        enrol.on(.POST, subject + ["faces"], body: .stream, use: self.enrol)
        write.delete(subject + ["faces", ":face"], use: deleteFace)
    }

    // MARK: - Lookups

    static func uuid(_ req: Request, _ name: String) throws -> UUID {
        guard let text = req.parameters.get(name), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no \(name) \"\(req.parameters.get(name)?.prefix(40) ?? "")\"")
        }
        return id
    }

    func collection(_ req: Request, on db: any Database) async throws -> GalleryCollection {
        let id = try Self.uuid(req, "collection")
        guard let found = try await GalleryCollection.find(id, on: db) else {
            throw APIError.notFound("no collection \(id.uuidString.lowercased())")
        }
        return found
    }

    func subject(_ req: Request, collectionID: UUID, on db: any Database) async throws -> Subject {
        let id = try Self.uuid(req, "subject")
        guard let found = try await Subject.find(id, on: db), found.$collection.id == collectionID else {
            throw APIError.notFound("no subject \(id.uuidString.lowercased()) in this collection")
        }
        return found
    }

    static func conflict(_ message: String) -> APIError { APIError(.conflict, "ALREADY_EXISTS", message) }

    static func metadataText(_ metadata: [String: JSONValue]?) throws -> String {
        func check(_ value: JSONValue) throws {
            switch value {
            case .string(let text): try TextPolicy.refuseControlCharacters(text, field: "metadata")
            case .array(let items): for item in items { try check(item) }
            case .object(let fields):
                for (key, item) in fields {
                    try TextPolicy.refuseControlCharacters(key, field: "metadata")
                    try check(item)
                }
            case .number, .bool, .null: break
            }
        }
        try check(.object(metadata ?? [:]))
        let data = try JSONEncoder().encode(metadata ?? [:])
        guard data.count <= 16 * 1024 else { throw APIError.validation("metadata is over 16 KiB", field: "metadata") }
        return String(decoding: data, as: UTF8.self)
    }

    static func checkText(_ value: String, field: String, max: Int = 200) throws -> String {
        // Checked before trimming: trimming would drop a trailing CR, LF or NEL (U+0085) unseen.
        try TextPolicy.refuseControlCharacters(value, field: field)
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= max else {
            throw APIError.validation("\(field) must be 1 to \(max) characters", field: field)
        }
        return trimmed
    }

    // MARK: - Collections

    @Sendable
    func createCollection(_ req: Request) async throws -> Response {
        let body = try req.content.decode(CreateCollectionBody.self)
        let name = try Self.checkText(body.name, field: "name")
        let db = try router.primary
        if try await GalleryCollection.query(on: db).filter(\.$name == name).first() != nil {
            throw Self.conflict("a collection named \"\(name.prefix(60))\" exists")
        }
        // An API key is bound to one collection; a collection it created would be out of its reach.
        let principal = req.principal
        guard principal.kind == .user else {
            throw APIError(.forbidden, "FORBIDDEN", "an API key is bound to its collection and cannot create others")
        }
        if let description = body.description {
            try TextPolicy.refuseControlCharacters(description, field: "description", allowingLineBreaks: true)
        }
        let collection = GalleryCollection(id: UUID(), name: name, description: body.description)
        try await db.transaction { tx in
            try await collection.create(on: tx)
            try await GalleryVersion(collectionID: collection.id!).create(on: tx)
            // A user limited to assigned collections gets the one it creates, in the same
            // transaction, or it could not use what it just made.
            if case .only = principal.collections, let userID = UUID(uuidString: principal.id),
                let user = try await User.find(userID, on: tx)
            {
                user.collections += [collection.id!.uuidString.lowercased()]
                try await user.save(on: tx)
            }
            try await Audit.record(
                req, on: tx, action: "collection.create", resourceType: "collection", resourceID: collection.id!)
        }
        let response = Response(status: .created)
        try response.content.encode(req.envelope(try CollectionDTO(collection, subjects: 0, faces: 0)))
        return response
    }

    @Sendable
    func listCollections(_ req: Request) async throws -> Envelope<CollectionList> {
        let rows = try await router.read { db in try await GalleryCollection.query(on: db).sort(\.$name).all() }
        // A tenant sees only the collections it may read.
        let principal = req.principal
        let visible = rows.filter { principal.canAccess(collection: $0.id?.uuidString.lowercased() ?? "") }
        return req.envelope(CollectionList(items: try visible.map { try CollectionDTO($0) }))
    }

    @Sendable
    func getCollection(_ req: Request) async throws -> Envelope<CollectionDTO> {
        let dto = try await router.read { db in
            let c = try await self.collection(req, on: db)
            let subjects = try await Subject.query(on: db).filter(\.$collection.$id == c.id!).count()
            let faces = try await EnrolledFace.query(on: db).filter(\.$collectionID == c.id!).count()
            return try CollectionDTO(c, subjects: subjects, faces: faces)
        }
        return req.envelope(dto)
    }

    @Sendable
    func deleteCollection(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let id = try collection.requireID()
        let subjectIDs = try await Subject.query(on: db).filter(\.$collection.$id == id).all(\.$id)
        let erased = try await db.transaction { tx in
            let count = try await EnrolledFace.query(on: tx).filter(\.$collectionID == id).count()
            try await EnrolledFace.query(on: tx).filter(\.$collectionID == id).delete()
            try await Subject.query(on: tx).filter(\.$collection.$id == id).delete()
            try await GalleryVersion.query(on: tx).filter(\.$id == id).delete()
            try await collection.delete(on: tx)
            try await Audit.record(
                req, on: tx, action: "collection.delete", resourceType: "collection", resourceID: id,
                detail: "\(subjectIDs.count) subjects, \(count) faces erased")
            if router.kind == .postgres, let sql = tx as? any SQLDatabase {
                try await sql.raw(
                    "SELECT pg_notify(\(bind: GalleryService.channel), \(bind: id.uuidString.lowercased() + ":deleted"))"
                ).run()
            }
            return count
        }
        gallery.forget(id)
        for subjectID in subjectIDs { await runErasureHooks(req, collectionID: id, subjectID: subjectID) }
        return req.envelope(DeletedDTO(id: id, deleted: true, facesErased: erased))
    }

    // MARK: - Subjects

    @Sendable
    func createSubject(_ req: Request) async throws -> Response {
        let body = try req.content.decode(SubjectBody.self)
        guard let externalRaw = body.externalID else {
            throw APIError.validation("external_id is required", field: "external_id")
        }
        let externalID = try Self.checkText(externalRaw, field: "external_id")
        let name = try body.name.map { try Self.checkText($0, field: "name") } ?? externalID
        let metadata = try Self.metadataText(body.metadata)
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let subject = try await createSubject(
            collectionID: try collection.requireID(), externalID: externalID, name: name, metadata: metadata, on: db)
        let response = Response(status: .created)
        try response.content.encode(req.envelope(try SubjectDTO(subject, faceCount: 0)))
        return response
    }

    func createSubject(collectionID: UUID, externalID: String, name: String, metadata: String, on db: any Database)
        async throws -> Subject
    {
        if try await Subject.query(on: db).filter(\.$collection.$id == collectionID)
            .filter(\.$externalID == externalID).first() != nil
        {
            throw Self.conflict("a subject with external_id \"\(externalID.prefix(60))\" exists in this collection")
        }
        let subject = Subject(
            id: UUID(), collectionID: collectionID, externalID: externalID, name: name, metadata: metadata)
        try await subject.create(on: db)
        return subject
    }

    @Sendable
    func listSubjects(_ req: Request) async throws -> Envelope<SubjectPage> {
        let limit = try req.query.get(Int?.self, at: "limit") ?? 50
        let offset = try req.query.get(Int?.self, at: "offset") ?? 0
        guard (1...500).contains(limit) else { throw APIError.validation("limit must be 1...500", field: "limit") }
        guard offset >= 0 else { throw APIError.validation("offset must be 0 or more", field: "offset") }
        let page = try await router.read { db in
            let collection = try await self.collection(req, on: db)
            let id = try collection.requireID()
            let total = try await Subject.query(on: db).filter(\.$collection.$id == id).count()
            let rows = try await Subject.query(on: db).filter(\.$collection.$id == id)
                .sort(\.$createdAt).sort(\.$id).range(offset..<(offset + limit)).all()
            let ids = rows.compactMap(\.id)
            let faces =
                ids.isEmpty
                ? [] : try await EnrolledFace.query(on: db).filter(\.$subject.$id ~~ ids).all(\.$subject.$id)
            let counts = Dictionary(grouping: faces, by: { $0 }).mapValues(\.count)
            return SubjectPage(
                items: try rows.map { try SubjectDTO($0, faceCount: counts[$0.id!] ?? 0) }, total: total, limit: limit,
                offset: offset)
        }
        return req.envelope(page)
    }

    @Sendable
    func getSubject(_ req: Request) async throws -> Envelope<SubjectDTO> {
        let dto = try await router.read { db in
            let collection = try await self.collection(req, on: db)
            let subject = try await self.subject(req, collectionID: collection.id!, on: db)
            let faces = try await EnrolledFace.query(on: db).filter(\.$subject.$id == subject.id!).sort(\.$createdAt)
                .all()
            return try SubjectDTO(subject, faces: faces)
        }
        return req.envelope(dto)
    }

    @Sendable
    func updateSubject(_ req: Request) async throws -> Envelope<SubjectDTO> {
        let body = try req.content.decode(SubjectBody.self)
        guard body.name != nil || body.metadata != nil || body.externalID != nil else {
            throw APIError.validation("send name, external_id or metadata to change")
        }
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let subject = try await self.subject(req, collectionID: collection.id!, on: db)
        if let name = body.name { subject.name = try Self.checkText(name, field: "name") }
        if let metadata = body.metadata { subject.metadata = try Self.metadataText(metadata) }
        if let raw = body.externalID {
            let externalID = try Self.checkText(raw, field: "external_id")
            if externalID != subject.externalID,
                try await Subject.query(on: db).filter(\.$collection.$id == collection.id!)
                    .filter(\.$externalID == externalID).first() != nil
            {
                throw Self.conflict("a subject with external_id \"\(externalID.prefix(60))\" exists in this collection")
            }
            subject.externalID = externalID
        }
        try await subject.save(on: db)
        let faces = try await EnrolledFace.query(on: db).filter(\.$subject.$id == subject.id!).all()
        return req.envelope(try SubjectDTO(subject, faces: faces))
    }

    /// Erasure: the subject's faces (embeddings) and the subject go in one transaction with its
    /// audit row; then the in-memory indexes and any cached results forget it.
    @Sendable
    func deleteSubject(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let collectionID = try collection.requireID()
        let subject = try await self.subject(req, collectionID: collectionID, on: db)
        let subjectID = try subject.requireID()
        let (erased, version) = try await db.transaction { tx in
            let count = try await EnrolledFace.query(on: tx).filter(\.$subject.$id == subjectID).count()
            try await EnrolledFace.query(on: tx).filter(\.$subject.$id == subjectID).delete()
            try await subject.delete(on: tx)
            try await Audit.record(
                req, on: tx, action: "subject.erase", resourceType: "subject", resourceID: subjectID,
                detail: "\(count) faces erased")
            return (count, try await gallery.bumpVersion(collectionID, on: tx))
        }
        gallery.committed(collectionID, version: version) { _, index in index.remove(subjectID: subjectID) }
        await runErasureHooks(req, collectionID: collectionID, subjectID: subjectID)
        return req.envelope(DeletedDTO(id: subjectID, deleted: true, facesErased: erased))
    }

    func runErasureHooks(_ req: Request, collectionID: UUID, subjectID: UUID) async {
        for hook in gallery.erasureHooks {
            do {
                try await hook.subjectErased(collectionID: collectionID, subjectID: subjectID)
            } catch {
                req.logger.error("erasure hook failed: \(error)", metadata: ["subject": .string("\(subjectID)")])
            }
        }
    }

    /// Everything stored about a subject, embeddings decrypted; read from the primary so that it
    /// is complete, and audited.
    @Sendable
    func exportSubject(_ req: Request) async throws -> Envelope<SubjectExport> {
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let subject = try await self.subject(req, collectionID: collection.id!, on: db)
        let subjectID = try subject.requireID()
        let faces = try await EnrolledFace.query(on: db).filter(\.$subject.$id == subjectID).sort(\.$createdAt).all()
        let exported = try faces.map { face in
            SubjectExport.ExportedFace(
                face: try StoredFaceDTO(face),
                embedding: try gallery.cipher.openEmbedding(
                    face.embedding, keyID: face.keyID, context: EnrolledFace.sealContext(try face.requireID())),
                keyID: face.keyID, imageSHA256: face.imageSHA256)
        }
        try await Audit.record(
            req, on: db, action: "subject.export", resourceType: "subject", resourceID: subjectID,
            detail: "\(faces.count) faces")
        let audit = try await AuditEvent.query(on: db).filter(\.$resourceType == "subject")
            .filter(\.$resourceID == subjectID.uuidString.lowercased()).sort(\.$createdAt).all()
        return req.envelope(
            SubjectExport(
                subject: try SubjectDTO(subject, faces: faces), collection: try CollectionDTO(collection),
                faces: exported,
                audit: audit.map {
                    .init(
                        action: $0.action, actor: $0.actor, outcome: $0.outcome, requestID: $0.requestID,
                        createdAt: iso8601($0.createdAt))
                }, exportedAt: Date().formatted(.iso8601)))
    }

    // MARK: - Enrolment

    enum EnrolMode: String { case largest, all }

    @Sendable
    func enrol(_ req: Request) async throws -> Response {
        let input = try await req.imageRequest(maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.enrol)
        let p = try analysis.parameters(input)
        let mode = EnrolMode(rawValue: try input.choice(.enrolMode))!
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let subject = try await self.subject(req, collectionID: collection.id!, on: db)
        let result = try await enrol(
            try input.image("image"), parameters: p, mode: mode, subject: subject, collectionID: collection.id!,
            context: req.context)
        let response = Response(status: .created)
        try response.content.encode(req.envelope(result))
        return response
    }

    /// Detects, embeds, seals and stores; refuses an image this subject already has.
    func enrol(
        _ bytes: [UInt8], parameters p: AnalysisRoutes.FaceParameters, mode: EnrolMode, subject: Subject,
        collectionID: UUID,
        context: RequestContext
    ) async throws -> EnrolResponse {
        let subjectID = try subject.requireID()
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let db = try router.primary
        @Sendable func duplicate(_ db: any Database) async throws {
            if try await EnrolledFace.query(on: db).filter(\.$subject.$id == subjectID)
                .filter(\.$imageSHA256 == digest).first() != nil
            {
                throw APIError(
                    .conflict, "DUPLICATE_IMAGE", "this image is already enrolled for this subject",
                    details: ["image_sha256": digest])
            }
        }
        // Checked before the models run (cheap refusal), and again inside the transaction.
        try await duplicate(db)
        let (_, reports) = try await analysis.run(bytes, p, kinds: [.embedding, .quality], context: context)
        let chosen: [FaceReport]
        switch mode {
        case .largest: chosen = reports.max(by: { $0.face.box.area < $1.face.box.area }).map { [$0] } ?? []
        case .all: chosen = reports
        }
        guard !chosen.isEmpty else {
            throw p.minQuality > 0
                ? APIError.noFace("no face with quality of at least \(p.minQuality) was detected") : APIError.noFace()
        }
        let model = self.model
        let cipher = gallery.cipher
        var rows: [(EnrolledFace, [Float])] = []
        for report in chosen {
            guard let embedding = report.embedding else { continue }
            let id = UUID()
            let (sealed, keyID) = try cipher.sealEmbedding(embedding, context: EnrolledFace.sealContext(id))
            let face = EnrolledFace()
            face.id = id
            face.$subject.id = subjectID
            face.collectionID = collectionID
            face.embedding = sealed
            face.keyID = keyID
            face.embeddingModel = model.id
            face.embeddingModelVersion = model.version
            face.quality = report.quality.score
            face.boxX = report.face.box.x
            face.boxY = report.face.box.y
            face.boxWidth = report.face.box.width
            face.boxHeight = report.face.box.height
            face.imageSHA256 = digest
            rows.append((face, embedding))
        }
        let stored = rows
        let version = try await db.transaction { tx in
            try await duplicate(tx)
            for (face, _) in stored { try await face.create(on: tx) }
            return try await gallery.bumpVersion(collectionID, on: tx)
        }
        gallery.committed(collectionID, version: version) { indexModel, index in
            guard indexModel == model else { return }
            for (face, embedding) in stored { index.add(faceID: face.id!, subjectID: subjectID, vector: embedding) }
        }
        return EnrolResponse(
            subjectID: subjectID, faces: try stored.map { try StoredFaceDTO($0.0) }, facesDetected: reports.count)
    }

    @Sendable
    func deleteFace(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let collectionID = try collection.requireID()
        let subject = try await self.subject(req, collectionID: collectionID, on: db)
        let faceID = try Self.uuid(req, "face")
        guard let face = try await EnrolledFace.find(faceID, on: db), face.$subject.id == subject.id else {
            throw APIError.notFound("no face \(faceID.uuidString.lowercased()) for this subject")
        }
        let version = try await db.transaction { tx in
            try await face.delete(on: tx)
            return try await gallery.bumpVersion(collectionID, on: tx)
        }
        gallery.committed(collectionID, version: version) { _, index in index.remove(faceID: faceID) }
        return req.envelope(DeletedDTO(id: faceID, deleted: true, facesErased: 1))
    }

    /// Enrols several people at once: JSON `{"items": [{"external_id", "name", "image"}]}`, or
    /// multipart image parts with an `external_ids` field listing one id per image in order.
    /// Subjects are created when missing; each item succeeds or fails on its own.
    @Sendable
    func batchEnrol(_ req: Request) async throws -> Envelope<BatchEnrolResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes * config.batchMaxImages, parameters: RouteParameters.batchEnrol)
        let p = try analysis.parameters(input)
        var items: [(externalID: String?, name: String?, image: [UInt8]?)] = []
        if case .array(let list)? = try input.json(.batchItems) {
            for entry in list {
                guard case .object(let fields) = entry else {
                    throw APIError.validation("items must be objects", field: "items")
                }
                let image = fields["image"].flatMap { value -> [UInt8]? in
                    guard case .string(let text) = value else { return nil }
                    return try? Request.base64Image(text, field: "image")
                }
                items.append((fields["external_id"]?.scalarText, fields["name"]?.scalarText, image))
            }
        } else {
            let ids = (try input.text(.externalIDs) ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard ids.count == input.imageList.count else {
                throw APIError.validation(
                    "external_ids must name one subject per image (\(input.imageList.count) images, \(ids.count) ids)",
                    field: "external_ids")
            }
            items = zip(ids, input.imageList).map { ($0, nil, $1) }
        }
        guard !items.isEmpty else { throw APIError.validation("the batch holds no items", field: "items") }
        guard items.count <= config.batchMaxImages else {
            throw APIError.validation(
                "a batch holds at most \(config.batchMaxImages) items, got \(items.count)", field: "items")
        }
        let db = try router.primary
        let collection = try await self.collection(req, on: db)
        let collectionID = try collection.requireID()
        var results: [BatchEnrolResponse.Item] = []
        // One item at a time: the models already use every core for one image.
        for (index, item) in items.enumerated() {
            do {
                guard let raw = item.externalID else {
                    throw APIError.validation("item \(index) has no external_id", field: "external_id")
                }
                let externalID = try Self.checkText(raw, field: "external_id")
                guard let image = item.image, !image.isEmpty else {
                    throw APIError.invalidImage("item \(index) has no valid base64 image")
                }
                guard image.count <= config.imageLimits.maxBytes else {
                    throw APIError.imageTooLarge("item \(index) exceeds \(config.imageLimits.maxBytes) bytes")
                }
                let subject: Subject
                if let existing = try await Subject.query(on: db).filter(\.$collection.$id == collectionID)
                    .filter(\.$externalID == externalID).first()
                {
                    subject = existing
                } else {
                    subject = try await createSubject(
                        collectionID: collectionID, externalID: externalID,
                        name: try item.name.map { try Self.checkText($0, field: "name") } ?? externalID,
                        metadata: "{}", on: db)
                }
                let data = try await enrol(
                    image, parameters: p, mode: .largest, subject: subject, collectionID: collectionID,
                    context: req.context)
                results.append(.init(index: index, externalID: externalID, data: data, error: nil))
            } catch {
                let e = APIError.from(error)
                results.append(
                    .init(
                        index: index, externalID: item.externalID, data: nil,
                        error: .init(code: e.code, message: e.message, details: e.details)))
            }
        }
        let failed = results.filter { $0.error != nil }.count
        return req.envelope(BatchEnrolResponse(items: results, succeeded: results.count - failed, failed: failed))
    }

    // MARK: - Identify

    @Sendable
    func identify(_ req: Request) async throws -> Envelope<IdentifyResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.identify)
        let p = try analysis.parameters(input)
        let threshold = try input.number(.verifyThreshold, default: config.verifyThreshold)
        let topK = try input.integer(.topK)
        let collectionID = try Self.uuid(req, "collection")
        let model = self.model
        // Loading (or checking) the index first makes an unknown collection a cheap 404.
        let index = try await gallery.index(collectionID, model: model)
        let (image, reports) = try await analysis.run(
            try input.image("image"), p, kinds: [.embedding, .quality], context: req.context)
        let results = reports.map { report in
            (report, report.embedding.map { index.search(EmbeddingMath.normalized($0), k: topK) } ?? [])
        }
        let subjectIDs = Array(Set(results.flatMap { $0.1.map(\.subjectID) }))
        let subjects = try await router.read { db in
            subjectIDs.isEmpty ? [] : try await Subject.query(on: db).filter(\.$id ~~ subjectIDs).all()
        }
        let byID = Dictionary(subjects.compactMap { s in s.id.map { ($0, s) } }, uniquingKeysWith: { a, _ in a })
        let faces = results.map { report, matches in
            let candidates = matches.compactMap { match -> IdentifyResponse.Candidate? in
                // A subject erased since the index was built is not reported.
                guard let subject = byID[match.subjectID] else { return nil }
                return .init(
                    subjectID: match.subjectID, externalID: subject.externalID, name: subject.name,
                    similarity: (match.similarity * 10000).rounded() / 10000, isMatch: match.similarity >= threshold,
                    faceID: match.faceID)
            }
            return IdentifyResponse.Face(
                bbox: BoxDTO(report.face.box), score: (report.face.score * 10000).rounded() / 10000,
                quality: (report.quality.score * 1000).rounded() / 1000,
                unknown: !(candidates.first?.isMatch ?? false), matches: candidates)
        }
        return req.envelope(
            IdentifyResponse(
                faces: faces, faceCount: faces.count, thresholdUsed: threshold, topK: topK, model: model.label,
                gallerySize: index.count, image: ImageSizeDTO(width: image.width, height: image.height)))
    }
}
