import Crypto
import FaceKit
import FaceSearch
import Foundation
import Vapor

/// Collections, subjects, enrolment, identification and the privacy routes (erase, export): each
/// parses its request, calls the store (`GalleryStore`) or a use case (`GalleryUseCases`), and
/// answers with its DTO.
struct GalleryRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig
    let gallery: GalleryService

    var store: GalleryStore { GalleryStore(gallery: gallery) }
    var useCases: GalleryUseCases { GalleryUseCases(store: store, pipeline: FacePipeline(faces: faces)) }
    var idempotency: IdempotentRequests { IdempotentRequests(router: gallery.router) }
    var jobs: EnrolJobs { EnrolJobs(router: gallery.router) }

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
        read.on(.POST, collection + ["faces", ":face", "search"], body: .stream, use: searchByFace)
        enrol.on(.POST, collection + ["batch", "enroll"], body: .stream, use: batchEnrol)
            .allowingBody(upTo: config.batchBodyLimit)
        enrol.on(.POST, collection + ["jobs", "enroll"], body: .stream, use: createEnrolJob)
            .allowingBody(upTo: config.batchBodyLimit)
        read.get(collection + ["jobs", ":job"], use: getJob)
        write.post(collection + ["subjects"], use: createSubject)
        read.get(collection + ["subjects"], use: listSubjects)
        read.get(subject, use: getSubject)
        write.patch(subject, use: updateSubject)
        write.delete(subject, use: deleteSubject)
        read.get(subject + ["export"], use: exportSubject)
        enrol.on(.POST, subject + ["faces"], body: .stream, use: self.enrol)
        write.delete(subject + ["faces", ":face"], use: deleteFace)
    }

    // MARK: - Request values

    static func uuid(_ req: Request, _ name: String) throws -> UUID {
        guard let text = req.parameters.get(name), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no \(name) \"\(req.parameters.get(name)?.prefix(40) ?? "")\"")
        }
        return id
    }

    // MARK: - Collections

    @Sendable
    func createCollection(_ req: Request) async throws -> Response {
        let body = try req.content.decode(CreateCollectionBody.self)
        let name = try TextPolicy.checked(body.name, field: "name")
        let recognizer = try faces.recognizer(
            named: body.recognitionModel ?? RecognitionModel.standard.id, field: "recognition_model")
        let collection = try await store.createCollection(
            name: name, description: body.description, recognizer: recognizer, by: req.principal,
            audit: req.auditActor)
        let response = Response(status: .created)
        try response.content.encode(req.envelope(try CollectionDTO(collection, subjects: 0, faces: 0)))
        return response
    }

    @Sendable
    func listCollections(_ req: Request) async throws -> Envelope<CollectionList> {
        let rows = try await store.collections()
        // A tenant sees only the collections it may read.
        let principal = req.principal
        let visible = rows.filter { principal.canAccess(collection: $0.id?.uuidString.lowercased() ?? "") }
        return req.envelope(CollectionList(items: try visible.map { try CollectionDTO($0) }))
    }

    @Sendable
    func getCollection(_ req: Request) async throws -> Envelope<CollectionDTO> {
        let (collection, subjects, faces) = try await store.collectionWithCounts(try Self.uuid(req, "collection"))
        return req.envelope(try CollectionDTO(collection, subjects: subjects, faces: faces))
    }

    @Sendable
    func deleteCollection(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let id = try Self.uuid(req, "collection")
        let erased = try await useCases.eraseCollection(id, audit: req.auditActor)
        return req.envelope(DeletedDTO(id: id, deleted: true, facesErased: erased))
    }

    // MARK: - Subjects

    @Sendable
    func createSubject(_ req: Request) async throws -> Response {
        let body = try req.content.decode(SubjectBody.self)
        guard let externalRaw = body.externalID else {
            throw APIError.validation("external_id is required", field: "external_id")
        }
        let externalID = try TextPolicy.checked(externalRaw, field: "external_id")
        let name = try body.name.map { try TextPolicy.checked($0, field: "name") } ?? externalID
        let metadata = try TextPolicy.metadataJSON(body.metadata)
        let collectionID = try Self.uuid(req, "collection")
        try await store.requireCollection(collectionID)
        let subject = try await store.createSubject(
            collectionID: collectionID, externalID: externalID, name: name, metadata: metadata)
        let response = Response(status: .created)
        try response.content.encode(req.envelope(try SubjectDTO(subject, faceCount: 0)))
        return response
    }

    @Sendable
    func listSubjects(_ req: Request) async throws -> Envelope<SubjectPage> {
        let limit = try req.query.get(Int?.self, at: "limit") ?? 50
        let offset = try req.query.get(Int?.self, at: "offset") ?? 0
        guard (1...500).contains(limit) else { throw APIError.validation("limit must be 1...500", field: "limit") }
        guard offset >= 0 else { throw APIError.validation("offset must be 0 or more", field: "offset") }
        let page = try await store.subjects(in: try Self.uuid(req, "collection"), limit: limit, offset: offset)
        return req.envelope(
            SubjectPage(
                items: try page.rows.map { try SubjectDTO($0, faceCount: page.faceCounts[$0.id!] ?? 0) },
                total: page.total, limit: limit, offset: offset))
    }

    @Sendable
    func getSubject(_ req: Request) async throws -> Envelope<SubjectDTO> {
        let collectionID = try Self.uuid(req, "collection")
        let (subject, faces) = try await store.subjectWithFaces(try Self.uuid(req, "subject"), in: collectionID)
        return req.envelope(try SubjectDTO(subject, faces: faces))
    }

    @Sendable
    func updateSubject(_ req: Request) async throws -> Envelope<SubjectDTO> {
        let body = try req.content.decode(SubjectBody.self)
        guard body.name != nil || body.metadata != nil || body.externalID != nil else {
            throw APIError.validation("send name, external_id or metadata to change")
        }
        let collectionID = try Self.uuid(req, "collection")
        let subjectID = try Self.uuid(req, "subject")
        let change = GalleryStore.SubjectChange(
            name: try body.name.map { try TextPolicy.checked($0, field: "name") },
            externalID: try body.externalID.map { try TextPolicy.checked($0, field: "external_id") },
            metadata: try body.metadata.map { try TextPolicy.metadataJSON($0) })
        let (subject, faces) = try await store.updateSubject(subjectID, in: collectionID, change: change)
        return req.envelope(try SubjectDTO(subject, faces: faces))
    }

    /// Erasure: the subject's faces (embeddings) and the subject go in one transaction with its
    /// audit row; then the in-memory indexes and any cached results forget it.
    @Sendable
    func deleteSubject(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let collectionID = try Self.uuid(req, "collection")
        let subjectID = try Self.uuid(req, "subject")
        let erased = try await useCases.eraseSubject(subjectID, in: collectionID, audit: req.auditActor)
        return req.envelope(DeletedDTO(id: subjectID, deleted: true, facesErased: erased))
    }

    /// Everything stored about a subject, embeddings decrypted; read from the primary so that it
    /// is complete, and audited.
    @Sendable
    func exportSubject(_ req: Request) async throws -> Envelope<SubjectExport> {
        let collectionID = try Self.uuid(req, "collection")
        let (record, embeddings) = try await useCases.export(
            try Self.uuid(req, "subject"), in: collectionID, audit: req.auditActor)
        let exported = try zip(record.faces, embeddings).map { face, embedding in
            SubjectExport.ExportedFace(
                face: try StoredFaceDTO(face), embedding: embedding, keyID: face.keyID,
                imageSHA256: face.imageSHA256)
        }
        return req.envelope(
            SubjectExport(
                subject: try SubjectDTO(record.subject, faces: record.faces),
                collection: try CollectionDTO(record.collection), faces: exported,
                audit: record.audit.map {
                    .init(
                        action: $0.action, actor: $0.actor, outcome: $0.outcome, requestID: $0.requestID,
                        createdAt: iso8601($0.createdAt))
                }, exportedAt: Date().formatted(.iso8601)))
    }

    // MARK: - Enrolment

    @Sendable
    func enrol(_ req: Request) async throws -> Response {
        let input = try await req.imageRequest(maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.enrol)
        let p = try input.faceParameters(config)
        let mode = GalleryUseCases.EnrolMode(rawValue: try input.choice(.enrolMode))!
        let filter = QualityFilter(rawValue: try input.choice(.qualityFilter))!
        let collectionID = try Self.uuid(req, "collection")
        let subjectID = try Self.uuid(req, "subject")
        return try await idempotency.respond(
            to: req, scope: "enrol \(collectionID) \(subjectID)", requestSHA256: input.requestSHA256
        ) {
            let subject = try await store.subjectForWrite(subjectID, in: collectionID)
            let enrolled = try await useCases.enrol(
                try input.image("image"), parameters: p, mode: mode, quality: filter, subject: subject,
                collectionID: collectionID, context: req.context)
            let response = Response(status: .created)
            try response.content.encode(req.envelope(try EnrolResponse(enrolled)))
            return response
        }
    }

    @Sendable
    func deleteFace(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let collectionID = try Self.uuid(req, "collection")
        let subjectID = try Self.uuid(req, "subject")
        let faceID = try Self.uuid(req, "face")
        try await useCases.deleteFace(faceID, subjectID: subjectID, in: collectionID)
        return req.envelope(DeletedDTO(id: faceID, deleted: true, facesErased: 1))
    }

    /// One item of a batch or job: the subject it names and its image.
    struct BatchItem: Sendable {
        var externalID: String?
        var name: String?
        var image: [UInt8]?
    }

    /// The items of a batch or job: JSON `{"items": [{"external_id", "name", "image"}]}`, or
    /// multipart image parts with an `external_ids` field listing one id per image in order.
    func batchItems(_ input: ImageRequest) throws -> [BatchItem] {
        var items: [BatchItem] = []
        if case .array(let list)? = try input.json(.batchItems) {
            for entry in list {
                guard case .object(let fields) = entry else {
                    throw APIError.validation("items must be objects", field: "items")
                }
                let image = fields["image"].flatMap { value -> [UInt8]? in
                    guard case .string(let text) = value else { return nil }
                    return try? Request.base64Image(text, field: "image")
                }
                items.append(
                    BatchItem(
                        externalID: fields["external_id"]?.scalarText, name: fields["name"]?.scalarText, image: image))
            }
        } else {
            // Without the field every image is unnamed; an empty entry makes that one unnamed.
            let ids =
                try input.text(.externalIDs).map { text in
                    text.split(separator: ",", omittingEmptySubsequences: false).map {
                        $0.trimmingCharacters(in: .whitespaces)
                    }
                } ?? Array(repeating: "", count: input.imageList.count)
            guard ids.count == input.imageList.count else {
                throw APIError.validation(
                    "external_ids must name one subject per image (\(input.imageList.count) images, \(ids.count) ids)",
                    field: "external_ids")
            }
            items = zip(ids, input.imageList).map { BatchItem(externalID: $0, name: nil, image: $1) }
        }
        guard !items.isEmpty else { throw APIError.validation("the batch holds no items", field: "items") }
        guard items.count <= config.batchMaxImages else {
            throw APIError.validation(
                "a batch holds at most \(config.batchMaxImages) items, got \(items.count)", field: "items")
        }
        return items
    }

    /// What a batch enrolment or a job is asked: its items, the detection and quality settings for
    /// all of them, and the collection (which must exist).
    func batchRequest(_ req: Request) async throws -> (
        ImageRequest, FaceParameters, QualityFilter, [BatchItem], UUID
    ) {
        let input = try await req.imageRequest(
            maxBytes: config.batchBodyLimit, parameters: RouteParameters.batchEnrol)
        let p = try input.faceParameters(config)
        let filter = QualityFilter(rawValue: try input.choice(.qualityFilter))!
        let items = try batchItems(input)
        let collectionID = try Self.uuid(req, "collection")
        try await store.requireCollection(collectionID)
        return (input, p, filter, items, collectionID)
    }

    /// Enrols one item (creating its subject when missing), or, without an external id, every
    /// face of its image unnamed into the collection's clusters; a failure is the item's result.
    func enrolItem(
        _ index: Int, _ item: BatchItem, parameters p: FaceParameters, quality filter: QualityFilter,
        collectionID: UUID, context: RequestContext
    ) async -> BatchEnrolResponse.Item {
        do {
            guard let image = item.image, !image.isEmpty else {
                throw APIError.invalidImage("item \(index) has no valid base64 image")
            }
            guard image.count <= config.imageLimits.maxBytes else {
                throw APIError.imageTooLarge("item \(index) exceeds \(config.imageLimits.maxBytes) bytes")
            }
            guard let raw = item.externalID, !raw.isEmpty else {
                let threshold = try await useCases.model(of: collectionID).recognizer.threshold(config)
                let enrolled = try await useCases.enrolUnnamed(
                    image, parameters: p, mode: .all, quality: filter, collectionID: collectionID,
                    threshold: threshold, context: context)
                return .init(
                    index: index, externalID: nil, data: nil, unnamed: try UnnamedEnrolResponse(enrolled), error: nil)
            }
            let externalID = try TextPolicy.checked(raw, field: "external_id")
            let data = try EnrolResponse(
                try await useCases.enrolItem(
                    image, externalID: externalID, name: item.name, parameters: p, quality: filter,
                    collectionID: collectionID, context: context))
            return .init(index: index, externalID: externalID, data: data, error: nil)
        } catch {
            let e = APIError.from(error)
            return .init(
                index: index, externalID: item.externalID, data: nil,
                error: .init(code: e.code, message: e.message, details: e.details))
        }
    }

    /// Enrols several people at once; subjects are created when missing; each item succeeds or
    /// fails on its own.
    @Sendable
    func batchEnrol(_ req: Request) async throws -> Response {
        let (input, p, filter, items, collectionID) = try await batchRequest(req)
        return try await idempotency.respond(
            to: req, scope: "batch enrol \(collectionID)", requestSHA256: input.requestSHA256
        ) {
            var results: [BatchEnrolResponse.Item] = []
            // One item at a time: the models already use every core for one image.
            for (index, item) in items.enumerated() {
                results.append(
                    await enrolItem(
                        index, item, parameters: p, quality: filter, collectionID: collectionID, context: req.context))
            }
            let failed = results.filter { $0.error != nil }.count
            let response = Response(status: .ok)
            try response.content.encode(
                req.envelope(BatchEnrolResponse(items: results, succeeded: results.count - failed, failed: failed)))
            return response
        }
    }

    // MARK: - Jobs

    /// The batch enrolment as a job: 202 with the job at once; the items run in the background
    /// (`EnrolJobs`), `GET …/jobs/{id}` follows them.
    @Sendable
    func createEnrolJob(_ req: Request) async throws -> Response {
        let (input, p, filter, items, collectionID) = try await batchRequest(req)
        return try await idempotency.respond(
            to: req, scope: "enrol job \(collectionID)", requestSHA256: input.requestSHA256
        ) {
            let job = try await jobs.create(collectionID: collectionID, by: req.principal, total: items.count)
            let id = try job.requireID()
            await req.audit(
                action: "job.enroll.create", resourceType: "job", resourceID: id.uuidString.lowercased(),
                details: ["collection": collectionID.uuidString.lowercased(), "items": "\(items.count)"])
            // The work outlives the request: its own context, never the request's.
            let context = RequestContext(requestID: "job-\(id.uuidString.lowercased())")
            let logger = req.logger
            Task { [self] in
                await jobs.run(job, count: items.count, logger: logger) { index in
                    await enrolItem(
                        index, items[index], parameters: p, quality: filter, collectionID: collectionID,
                        context: context)
                }
            }
            let response = Response(status: .accepted)
            response.headers.replaceOrAdd(
                name: .location,
                value: "/v1/collections/\(collectionID.uuidString.lowercased())/jobs/\(id.uuidString.lowercased())")
            try response.content.encode(req.envelope(try EnrolJobDTO(job)))
            return response
        }
    }

    @Sendable
    func getJob(_ req: Request) async throws -> Envelope<EnrolJobDTO> {
        let collectionID = try Self.uuid(req, "collection")
        let jobID = try Self.uuid(req, "job")
        try await store.requireCollection(collectionID)
        let job = try await jobs.find(jobID, in: collectionID)
        await req.audit(action: "job.read", resourceType: "job", resourceID: jobID.uuidString.lowercased())
        return req.envelope(try EnrolJobDTO(job))
    }

    // MARK: - Identify

    @Sendable
    func identify(_ req: Request) async throws -> Envelope<IdentifyResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.identify)
        let p = try input.faceParameters(config)
        let sentThreshold = try input.numberIfSent(.verifyThreshold)
        let topK = try input.integer(.topK)
        let mode = MatchMode(rawValue: try input.choice(.matchMode))!
        let collectionID = try Self.uuid(req, "collection")
        let keep = try input.choice(.keepUnmatched) == "true"
        if keep {  // it stores faces: the enrolment permission, on top of the route's read
            _ = try await req.authorize(.faceEnroll, collection: collectionID.uuidString.lowercased())
        }
        // The collection's recognizer decides the embedding's length and the default threshold.
        let (recognizer, modelKey) = try await useCases.model(of: collectionID)
        let threshold = sentThreshold ?? recognizer.threshold(config)
        if let embedding = try input.embedding(.identifyEmbedding, dimension: recognizer.network.dimension) {
            guard !keep else {
                throw APIError.validation(
                    "keep_unmatched keeps faces of an image, not an embedding", field: "keep_unmatched")
            }
            try Self.requireModel(try input.text(.embeddingModel), modelKey)
            let found = try await useCases.identify(
                embedding: embedding, collectionID: collectionID, topK: topK, mode: mode)
            let matches = Self.candidates(found.matches, threshold: threshold)
            let face = IdentifyResponse.Face(
                bbox: nil, score: nil, quality: nil, unknown: !(matches.first?.isMatch ?? false), matches: matches)
            return req.envelope(
                IdentifyResponse(
                    faces: [face], faceCount: 1, thresholdUsed: threshold, topK: topK, matchMode: mode.rawValue,
                    model: modelKey.label, gallerySize: found.gallerySize, image: nil))
        }
        if try input.text(.embeddingModel) != nil {
            throw APIError.validation("model goes with embedding", field: "model")
        }
        let image = try input.image("image")
        let found = try await useCases.identify(
            image, collectionID: collectionID, parameters: p, topK: topK, mode: mode, context: req.context)
        var faces = found.faces.map { face in
            let candidates = Self.candidates(face.matches, threshold: threshold)
            return IdentifyResponse.Face(
                bbox: BoxDTO(face.report.face.box), score: (face.report.face.score * 10000).rounded() / 10000,
                quality: (face.report.quality.score * 1000).rounded() / 1000,
                unknown: !(candidates.first?.isMatch ?? false), matches: candidates)
        }
        if keep {
            let unknown = faces.indices.filter { faces[$0].unknown }
            let kept = try await useCases.keepUnmatched(
                unknown.map { found.faces[$0].report }, imageSHA256: Secrets.hex(SHA256.hash(data: image)),
                collectionID: collectionID, threshold: recognizer.threshold(config))
            for (position, stored) in kept {
                faces[unknown[position]].kept = try UnnamedFaceDTO(stored.row, cluster: stored.placement.clusterID)
            }
            if !kept.isEmpty {
                await req.audit(
                    action: "cluster.keep", resourceType: "collection",
                    resourceID: collectionID.uuidString.lowercased(),
                    details: ["faces": "\(kept.count)"])
            }
        }
        return req.envelope(
            IdentifyResponse(
                faces: faces, faceCount: faces.count, thresholdUsed: threshold, topK: topK, matchMode: mode.rawValue,
                model: found.model.label,
                gallerySize: found.gallerySize,
                image: ImageSizeDTO(width: found.image.width, height: found.image.height)))
    }

    /// An embedding's model must be the one this collection searches with: its id or its label.
    private static func requireModel(_ sent: String?, _ model: EmbeddingModelKey) throws {
        guard let sent else {
            throw APIError.validation("model is required with embedding (\(model.label))", field: "model")
        }
        guard sent == model.id || sent == model.label else {
            throw APIError.validation(
                "model \(sent.prefix(40)) is not this collection's model (\(model.label)); "
                    + "an embedding is comparable only with embeddings of the same model", field: "model")
        }
    }

    static func candidates(_ matches: [(match: EmbeddingIndex.Match, subject: Subject)], threshold: Float)
        -> [IdentifyResponse.Candidate]
    {
        matches.map { match, subject in
            IdentifyResponse.Candidate(
                subjectID: match.subjectID, externalID: subject.externalID, name: subject.name,
                similarity: (match.similarity * 10000).rounded() / 10000, isMatch: match.similarity >= threshold,
                faceID: match.faceID)
        }
    }

    /// The subjects nearest to a stored face, its own subject left out (audited: it reads a
    /// stored embedding).
    @Sendable
    func searchByFace(_ req: Request) async throws -> Envelope<FaceSearchResponse> {
        let input = try await req.imageRequest(
            maxBytes: 65_536, parameters: RouteParameters.faceSearch)
        let sentThreshold = try input.numberIfSent(.verifyThreshold)
        let topK = try input.integer(.topK)
        let mode = MatchMode(rawValue: try input.choice(.matchMode))!
        let collectionID = try Self.uuid(req, "collection")
        let faceID = try Self.uuid(req, "face")
        let found = try await useCases.search(
            face: faceID, collectionID: collectionID, topK: topK, mode: mode, audit: req.auditActor)
        let defaultThreshold = try await useCases.model(of: collectionID).recognizer.threshold(config)
        let threshold = sentThreshold ?? defaultThreshold
        let matches = Self.candidates(found.matches, threshold: threshold)
        return req.envelope(
            FaceSearchResponse(
                faceID: faceID, subjectID: found.face.$subject.id, unknown: !(matches.first?.isMatch ?? false),
                matches: matches, thresholdUsed: threshold, topK: topK, matchMode: mode.rawValue,
                model: found.model.label,
                gallerySize: found.gallerySize))
    }
}
