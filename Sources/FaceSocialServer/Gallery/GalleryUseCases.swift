import Crypto
import FaceKit
import FaceSearch
import Foundation
import Logging

/// What the gallery does with faces: enrol, identify, erase and export. Each use case takes
/// checked values from a route, works through the store (rows) and the gallery service (the
/// in-memory indexes), and returns plain results the route turns into its answer.
struct GalleryUseCases: Sendable {
    let store: GalleryStore
    let pipeline: FacePipeline
    var gallery: GalleryService { store.gallery }

    /// The key a recognizer's rows are stored and searched under: its id and manifest version.
    func key(_ recognizer: RecognitionModel) -> EmbeddingModelKey {
        EmbeddingModelKey(
            id: recognizer.id,
            version: pipeline.faces.registry.store.manifest.entry(recognizer.id)?.version ?? "unknown")
    }

    /// A collection's recognizer (named at its creation) and its key; 404 for no collection.
    func model(of collectionID: UUID) async throws -> (recognizer: RecognitionModel, key: EmbeddingModelKey) {
        let recognizer = try await gallery.recognizer(of: collectionID)
        return (recognizer, key(recognizer))
    }

    // MARK: - Enrolment

    enum EnrolMode: String { case largest, all }

    struct Enrolled {
        let subjectID: UUID
        let faces: [EnrolledFace]
        let facesDetected: Int
        /// Faces the quality filter kept out, with what they failed.
        let unindexed: [(face: FaceReport, problems: [QualityProblem])]
    }

    /// The faces of one image to store: detected, embedded, chosen by `mode` and passed through
    /// the quality gate (422 `NO_FACE_DETECTED` or `FACE_QUALITY_TOO_LOW` when none is left).
    struct Chosen {
        let faces: [(report: FaceReport, embedding: [Float])]
        let facesDetected: Int
        let unindexed: [(face: FaceReport, problems: [QualityProblem])]
    }

    func chooseFaces(
        _ bytes: [UInt8], parameters: FaceParameters, recognizer: RecognitionModel, mode: EnrolMode,
        quality filter: QualityFilter, context: RequestContext
    ) async throws -> Chosen {
        var p = parameters
        p.recognizer = recognizer
        let (_, reports) = try await pipeline.run(bytes, p, kinds: [.embedding, .quality], context: context)
        let candidates: [FaceReport]
        switch mode {
        case .largest: candidates = reports.max(by: { $0.face.box.area < $1.face.box.area }).map { [$0] } ?? []
        case .all: candidates = reports
        }
        guard !candidates.isEmpty else {
            throw p.minQuality > 0
                ? APIError.noFace("no face with quality of at least \(p.minQuality) was detected") : APIError.noFace()
        }
        // The quality gate: a face failing the filter's limits is reported, not enrolled.
        let checked = candidates.map { ($0, filter.limits.map($0.quality.problems) ?? []) }
        let unindexed = checked.filter { !$0.1.isEmpty }
        let chosen = checked.filter(\.1.isEmpty).compactMap { report, _ in report.embedding.map { (report, $0) } }
        guard !chosen.isEmpty else { throw APIError.lowQuality(unindexed.map(\.1), filter: filter) }
        return Chosen(
            faces: chosen, facesDetected: reports.count, unindexed: unindexed.map { (face: $0.0, problems: $0.1) })
    }

    /// Detects, embeds, seals and stores the faces of one image for a subject, then applies them
    /// to the loaded indexes. Refuses an image this subject already has: checked before the models
    /// run (a cheap refusal) and again inside the transaction.
    func enrol(
        _ bytes: [UInt8], parameters p: FaceParameters, mode: EnrolMode, quality filter: QualityFilter,
        subject: Subject, collectionID: UUID, context: RequestContext
    ) async throws -> Enrolled {
        let subjectID = try subject.requireID()
        let digest = Secrets.hex(SHA256.hash(data: bytes))
        try await store.refuseDuplicate(subjectID: subjectID, imageSHA256: digest, on: try store.router.primary)
        let (recognizer, model) = try await model(of: collectionID)
        let chosen = try await chooseFaces(
            bytes, parameters: p, recognizer: recognizer, mode: mode, quality: filter, context: context)
        let rows = try chosen.faces.map { report, embedding in
            let face = try EnrolledFace(
                face: report.face.box, quality: report.quality.score, embedding: embedding,
                model: (model.id, model.version), collectionID: collectionID, imageSHA256: digest,
                cipher: gallery.cipher)
            face.$subject.id = subjectID
            return (face, embedding)
        }
        let stored = rows
        let version = try await store.storeFaces(
            stored.map(\.0), subjectID: subjectID, imageSHA256: digest, collectionID: collectionID)
        gallery.committed(collectionID, version: version) { indexModel, index in
            guard indexModel == model else { return }
            for (face, embedding) in stored { index.add(faceID: face.id!, subjectID: subjectID, vector: embedding) }
        }
        return Enrolled(
            subjectID: subjectID, faces: stored.map(\.0), facesDetected: chosen.facesDetected,
            unindexed: chosen.unindexed)
    }

    /// One item of a batch or job: the image enrolled (largest face) for the subject with this
    /// external id, which is created with the item's name when missing (the name is checked only
    /// then; the external id arrives checked). A subject created here for an image that could not
    /// be enrolled (no face, too blurry, not an image) is removed again while it is still empty,
    /// so a failed item leaves nothing behind.
    func enrolItem(
        _ image: [UInt8], externalID: String, name: String?, parameters p: FaceParameters,
        quality filter: QualityFilter,
        collectionID: UUID, context: RequestContext
    ) async throws -> Enrolled {
        let subject: Subject
        var created = false
        if let existing = try await store.subject(
            externalID: externalID, in: collectionID, on: try store.router.primary)
        {
            subject = existing
        } else {
            subject = try await store.createSubject(
                collectionID: collectionID, externalID: externalID,
                name: try name.map { try TextPolicy.checked($0, field: "name") } ?? externalID, metadata: "{}")
            created = true
        }
        do {
            return try await enrol(
                image, parameters: p, mode: .largest, quality: filter, subject: subject, collectionID: collectionID,
                context: context)
        } catch {
            if created { try? await store.deleteSubjectIfEmpty(try subject.requireID()) }
            throw error
        }
    }

    // MARK: - Identification

    struct Identified {
        struct Face {
            let report: FaceReport
            /// Best first; a subject erased since the index was built is left out.
            let matches: [(match: EmbeddingIndex.Match, subject: Subject)]
        }
        let image: RGBImage
        let faces: [Face]
        let gallerySize: Int
        let model: EmbeddingModelKey
    }

    /// The `topK` nearest enrolled subjects of every face in an image.
    func identify(
        _ bytes: [UInt8], collectionID: UUID, parameters p: FaceParameters, topK: Int, mode: MatchMode,
        context: RequestContext
    ) async throws -> Identified {
        let (recognizer, model) = try await model(of: collectionID)
        // Loading (or checking) the index first makes an unknown collection a cheap 404.
        let index = try await gallery.index(collectionID, model: model)
        var p = p
        p.recognizer = recognizer
        let (image, reports) = try await pipeline.run(bytes, p, kinds: [.embedding, .quality], context: context)
        let results = reports.map { report in
            (report, report.embedding.map { index.search(EmbeddingMath.normalized($0), k: topK, mode: mode) } ?? [])
        }
        let subjects = try await store.subjects(Array(Set(results.flatMap { $0.1.map(\.subjectID) })))
        let faces = results.map { report, matches in
            Identified.Face(
                report: report,
                matches: matches.compactMap { match in subjects[match.subjectID].map { (match, $0) } })
        }
        return Identified(image: image, faces: faces, gallerySize: index.count, model: model)
    }

    struct FaceSearched {
        let face: EnrolledFace
        /// Best first, the face's own subject left out.
        let matches: [(match: EmbeddingIndex.Match, subject: Subject)]
        let gallerySize: Int
        let model: EmbeddingModelKey
    }

    /// The `topK` subjects nearest to a face already enrolled (its stored embedding, decrypted in
    /// memory), leaving out the face's own subject: look-alikes and possible duplicates.
    func search(face faceID: UUID, collectionID: UUID, topK: Int, mode: MatchMode, audit: AuditActor) async throws
        -> FaceSearched
    {
        let model = try await model(of: collectionID).key
        let face = try await store.faceForSearch(faceID, in: collectionID, audit: audit)
        guard face.embeddingModel == model.id, face.embeddingModelVersion == model.version else {
            throw APIError(
                .conflict, "EMBEDDING_MODEL_MISMATCH",
                "the face was enrolled with \(face.embeddingModel)@\(face.embeddingModelVersion); "
                    + "this collection searches with \(model.label)")
        }
        let embedding = try gallery.cipher.openEmbedding(
            face.embedding, keyID: face.keyID, context: EnrolledFace.sealContext(faceID))
        let found = try await matches(
            of: embedding, collectionID: collectionID, topK: topK, mode: mode, without: face.$subject.id)
        return FaceSearched(face: face, matches: found.matches, gallerySize: found.gallerySize, model: model)
    }

    /// The `topK` nearest subjects of an embedding a caller already has (from `/v1/embed` or an
    /// export), made by `model` (checked by the route against this collection's model).
    func identify(embedding: [Float], collectionID: UUID, topK: Int, mode: MatchMode) async throws
        -> (matches: [(match: EmbeddingIndex.Match, subject: Subject)], gallerySize: Int)
    {
        try await matches(of: embedding, collectionID: collectionID, topK: topK, mode: mode, without: nil)
    }

    private func matches(
        of embedding: [Float], collectionID: UUID, topK: Int, mode: MatchMode, without excluded: UUID?
    ) async throws
        -> (matches: [(match: EmbeddingIndex.Match, subject: Subject)], gallerySize: Int)
    {
        let index = try await gallery.index(collectionID, model: try await model(of: collectionID).key)
        let found = index.search(EmbeddingMath.normalized(embedding), k: topK + (excluded == nil ? 0 : 1), mode: mode)
            .filter { $0.subjectID != excluded }.prefix(topK)
        let subjects = try await store.subjects(found.map(\.subjectID))
        return (found.compactMap { match in subjects[match.subjectID].map { (match, $0) } }, index.count)
    }

    // MARK: - Erasure

    /// A subject's faces and row, then the loaded indexes and every erasure hook (cached results).
    func eraseSubject(_ subjectID: UUID, in collectionID: UUID, audit: AuditActor) async throws -> Int {
        let (erased, version) = try await store.eraseSubject(subjectID, in: collectionID, audit: audit)
        gallery.committed(collectionID, version: version) { _, index in index.remove(subjectID: subjectID) }
        await runErasureHooks(collectionID: collectionID, subjectID: subjectID, logger: audit.logger)
        return erased
    }

    /// A collection with everything in it; other instances drop its indexes when it commits.
    func eraseCollection(_ collectionID: UUID, audit: AuditActor) async throws -> Int {
        let (subjectIDs, erased) = try await store.deleteCollection(collectionID, audit: audit)
        gallery.forget(collectionID)
        for subjectID in subjectIDs {
            await runErasureHooks(collectionID: collectionID, subjectID: subjectID, logger: audit.logger)
        }
        return erased
    }

    func deleteFace(_ faceID: UUID, subjectID: UUID, in collectionID: UUID) async throws {
        let version = try await store.deleteFace(faceID, subjectID: subjectID, in: collectionID)
        gallery.committed(collectionID, version: version) { _, index in index.remove(faceID: faceID) }
    }

    private func runErasureHooks(collectionID: UUID, subjectID: UUID, logger: Logger) async {
        for hook in gallery.erasureHooks {
            do {
                try await hook.subjectErased(collectionID: collectionID, subjectID: subjectID)
            } catch {
                logger.error("erasure hook failed: \(error)", metadata: ["subject": .string("\(subjectID)")])
            }
        }
    }

    // MARK: - Export

    /// Everything stored about a subject with its embeddings decrypted, audited.
    func export(_ subjectID: UUID, in collectionID: UUID, audit: AuditActor) async throws
        -> (record: GalleryStore.SubjectRecord, embeddings: [[Float]])
    {
        let record = try await store.exportRecord(subjectID, in: collectionID, audit: audit)
        let embeddings = try record.faces.map { face in
            try gallery.cipher.openEmbedding(
                face.embedding, keyID: face.keyID, context: EnrolledFace.sealContext(try face.requireID()))
        }
        return (record, embeddings)
    }
}
