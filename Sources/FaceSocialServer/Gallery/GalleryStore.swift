import Fluent
import Foundation
import SQLKit

/// The gallery's rows: every query and transaction on collections, subjects and enrolled faces.
/// Listings read from a replica when one is healthy; every write, and every read a write depends
/// on, uses the primary. A write that changes what a search finds bumps the collection's version
/// in its own transaction (`GalleryService.bumpVersion`, which also tells the other instances).
struct GalleryStore: Sendable {
    let gallery: GalleryService
    var router: DatabaseRouter { gallery.router }

    static func conflict(_ message: String) -> APIError { APIError(.conflict, "ALREADY_EXISTS", message) }

    // MARK: - Lookups

    func collection(_ id: UUID, on db: any Database) async throws -> GalleryCollection {
        guard let found = try await GalleryCollection.find(id, on: db) else {
            throw APIError.notFound("no collection \(id.uuidString.lowercased())")
        }
        return found
    }

    func subject(_ id: UUID, in collectionID: UUID, on db: any Database) async throws -> Subject {
        guard let found = try await Subject.find(id, on: db), found.$collection.id == collectionID else {
            throw APIError.notFound("no subject \(id.uuidString.lowercased()) in this collection")
        }
        return found
    }

    /// 404 unless the collection exists (on the primary: a write follows).
    func requireCollection(_ id: UUID) async throws {
        _ = try await collection(id, on: try router.primary)
    }

    /// A subject a write is about to change (enrolment), with its collection, from the primary.
    func subjectForWrite(_ id: UUID, in collectionID: UUID) async throws -> Subject {
        let db = try router.primary
        _ = try await collection(collectionID, on: db)
        return try await subject(id, in: collectionID, on: db)
    }

    func subject(externalID: String, in collectionID: UUID, on db: any Database) async throws -> Subject? {
        try await Subject.query(on: db).filter(\.$collection.$id == collectionID)
            .filter(\.$externalID == externalID).first()
    }

    // MARK: - Collections

    /// A new collection with its version row; a user limited to assigned collections gets it in
    /// the same transaction, or it could not use what it just made. `name` arrives checked.
    func createCollection(
        name: String, description: String?, recognizer: RecognitionModel, by principal: Principal, audit: AuditActor
    ) async throws -> GalleryCollection {
        let db = try router.primary
        if try await GalleryCollection.query(on: db).filter(\.$name == name).first() != nil {
            throw Self.conflict("a collection named \"\(name.prefix(60))\" exists")
        }
        // An API key is bound to one collection; a collection it created would be out of its reach.
        guard principal.kind == .user else {
            throw APIError(.forbidden, "FORBIDDEN", "an API key is bound to its collection and cannot create others")
        }
        if let description {
            try TextPolicy.refuseControlCharacters(description, field: "description", allowingLineBreaks: true)
        }
        let collection = GalleryCollection(
            id: UUID(), name: name, description: description, recognitionModel: recognizer.id)
        try await db.transaction { tx in
            try await collection.create(on: tx)
            try await GalleryVersion(collectionID: collection.id!).create(on: tx)
            if case .only = principal.collections, let userID = UUID(uuidString: principal.id),
                let user = try await User.find(userID, on: tx)
            {
                user.collections += [collection.id!.uuidString.lowercased()]
                try await user.save(on: tx)
            }
            await AuditLog.record(
                on: tx, by: audit, action: "collection.create", resourceType: "collection",
                resourceID: collection.id!.uuidString.lowercased(), details: ["recognition_model": recognizer.id])
        }
        return collection
    }

    func collections() async throws -> [GalleryCollection] {
        try await router.read { db in try await GalleryCollection.query(on: db).sort(\.$name).all() }
    }

    func collectionWithCounts(_ id: UUID) async throws -> (GalleryCollection, subjects: Int, faces: Int) {
        try await router.read { db in
            let c = try await collection(id, on: db)
            let subjects = try await Subject.query(on: db).filter(\.$collection.$id == id).count()
            let faces = try await EnrolledFace.query(on: db).filter(\.$collectionID == id).count()
            return (c, subjects, faces)
        }
    }

    /// Erases a collection with every subject and face in one transaction with its audit row.
    func deleteCollection(_ id: UUID, audit: AuditActor) async throws -> (subjectIDs: [UUID], faces: Int) {
        let db = try router.primary
        let collection = try await collection(id, on: db)
        let subjectIDs = try await Subject.query(on: db).filter(\.$collection.$id == id).all(\.$id)
        let erased = try await db.transaction { tx in
            let count =
                try await EnrolledFace.query(on: tx).filter(\.$collectionID == id).count()
                + UnnamedFace.query(on: tx).filter(\.$collectionID == id).count()
            try await EnrolledFace.query(on: tx).filter(\.$collectionID == id).delete()
            try await UnnamedFace.query(on: tx).filter(\.$collectionID == id).delete()
            try await Subject.query(on: tx).filter(\.$collection.$id == id).delete()
            try await GalleryVersion.query(on: tx).filter(\.$id == id).delete()
            try await collection.delete(on: tx)
            await AuditLog.record(
                on: tx, by: audit, action: "collection.delete", resourceType: "collection",
                resourceID: id.uuidString.lowercased(),
                details: ["detail": "\(subjectIDs.count) subjects, \(count) faces erased"])
            try await gallery.collectionDeleted(id, on: tx)
            return count
        }
        return (subjectIDs, erased)
    }

    // MARK: - Subjects

    func createSubject(collectionID: UUID, externalID: String, name: String, metadata: String) async throws
        -> Subject
    {
        let db = try router.primary
        if try await subject(externalID: externalID, in: collectionID, on: db) != nil {
            throw Self.conflict("a subject with external_id \"\(externalID.prefix(60))\" exists in this collection")
        }
        let subject = Subject(
            id: UUID(), collectionID: collectionID, externalID: externalID, name: name, metadata: metadata)
        try await subject.create(on: db)
        return subject
    }

    struct SubjectPage {
        let rows: [Subject]
        let total: Int
        let faceCounts: [UUID: Int]
    }

    func subjects(in collectionID: UUID, limit: Int, offset: Int) async throws -> SubjectPage {
        try await router.read { db in
            _ = try await collection(collectionID, on: db)
            let total = try await Subject.query(on: db).filter(\.$collection.$id == collectionID).count()
            let rows = try await Subject.query(on: db).filter(\.$collection.$id == collectionID)
                .sort(\.$createdAt).sort(\.$id).range(offset..<(offset + limit)).all()
            let ids = rows.compactMap(\.id)
            let faces =
                ids.isEmpty
                ? [] : try await EnrolledFace.query(on: db).filter(\.$subject.$id ~~ ids).all(\.$subject.$id)
            return SubjectPage(
                rows: rows, total: total, faceCounts: Dictionary(grouping: faces, by: { $0 }).mapValues(\.count))
        }
    }

    func subjectWithFaces(_ id: UUID, in collectionID: UUID) async throws -> (Subject, [EnrolledFace]) {
        try await router.read { db in
            _ = try await collection(collectionID, on: db)
            let subject = try await subject(id, in: collectionID, on: db)
            return (subject, try await faces(of: id, on: db))
        }
    }

    func faces(of subjectID: UUID, on db: any Database) async throws -> [EnrolledFace] {
        try await EnrolledFace.query(on: db).filter(\.$subject.$id == subjectID).sort(\.$createdAt).all()
    }

    /// What a subject update may change; nil leaves a field as it is. Values arrive checked.
    struct SubjectChange {
        var name: String?
        var externalID: String?
        var metadata: String?
    }

    func updateSubject(_ id: UUID, in collectionID: UUID, change: SubjectChange) async throws
        -> (Subject, [EnrolledFace])
    {
        let db = try router.primary
        _ = try await collection(collectionID, on: db)
        let subject = try await subject(id, in: collectionID, on: db)
        if let name = change.name { subject.name = name }
        if let metadata = change.metadata { subject.metadata = metadata }
        if let externalID = change.externalID {
            if externalID != subject.externalID,
                try await self.subject(externalID: externalID, in: collectionID, on: db) != nil
            {
                throw Self.conflict("a subject with external_id \"\(externalID.prefix(60))\" exists in this collection")
            }
            subject.externalID = externalID
        }
        try await subject.save(on: db)
        let faces = try await EnrolledFace.query(on: db).filter(\.$subject.$id == id).all()
        return (subject, faces)
    }

    /// The subject's faces (embeddings) and the subject, in one transaction with its audit row.
    func eraseSubject(_ id: UUID, in collectionID: UUID, audit: AuditActor) async throws
        -> (faces: Int, version: Int64)
    {
        let db = try router.primary
        _ = try await collection(collectionID, on: db)
        let subject = try await subject(id, in: collectionID, on: db)
        return try await db.transaction { tx in
            let count = try await EnrolledFace.query(on: tx).filter(\.$subject.$id == id).count()
            try await EnrolledFace.query(on: tx).filter(\.$subject.$id == id).delete()
            try await subject.delete(on: tx)
            await AuditLog.record(
                on: tx, by: audit, action: "subject.erase", resourceType: "subject",
                resourceID: id.uuidString.lowercased(), details: ["detail": "\(count) faces erased"])
            return (count, try await gallery.bumpVersion(collectionID, on: tx))
        }
    }

    /// Removes a subject that has no face (one a failed batch item created), in one statement so
    /// that a face enrolled into it meanwhile keeps it.
    func deleteSubjectIfEmpty(_ id: UUID) async throws {
        let sql = try router.primary as! any SQLDatabase
        try await sql.raw(
            """
            DELETE FROM subjects WHERE id = \(bind: id) AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = \(bind: id))
            """
        ).run()
    }

    // MARK: - Faces

    /// 409 `DUPLICATE_IMAGE` when the subject already has an image with this SHA-256.
    func refuseDuplicate(subjectID: UUID, imageSHA256 digest: String, on db: any Database) async throws {
        if try await EnrolledFace.query(on: db).filter(\.$subject.$id == subjectID)
            .filter(\.$imageSHA256 == digest).first() != nil
        {
            throw APIError(
                .conflict, "DUPLICATE_IMAGE", "this image is already enrolled for this subject",
                details: ["image_sha256": digest])
        }
    }

    /// Stores sealed faces of one image; the duplicate check runs again inside the transaction,
    /// so two enrolments of the same image racing each other store it once.
    func storeFaces(_ faces: [EnrolledFace], subjectID: UUID, imageSHA256 digest: String, collectionID: UUID)
        async throws -> Int64
    {
        try await router.primary.transaction { tx in
            try await refuseDuplicate(subjectID: subjectID, imageSHA256: digest, on: tx)
            for face in faces { try await face.create(on: tx) }
            return try await gallery.bumpVersion(collectionID, on: tx)
        }
    }

    func deleteFace(_ faceID: UUID, subjectID: UUID, in collectionID: UUID) async throws -> Int64 {
        let db = try router.primary
        _ = try await collection(collectionID, on: db)
        let subject = try await subject(subjectID, in: collectionID, on: db)
        guard let face = try await EnrolledFace.find(faceID, on: db), face.$subject.id == subject.id else {
            throw APIError.notFound("no face \(faceID.uuidString.lowercased()) for this subject")
        }
        return try await db.transaction { tx in
            try await face.delete(on: tx)
            return try await gallery.bumpVersion(collectionID, on: tx)
        }
    }

    /// One enrolled face of a collection, read from the primary (a face enrolled a moment ago is
    /// there), with an audit row for reading its stored embedding; 404 when it is not in it.
    func faceForSearch(_ id: UUID, in collectionID: UUID, audit: AuditActor) async throws -> EnrolledFace {
        let db = try router.primary
        _ = try await collection(collectionID, on: db)
        guard
            let face = try await EnrolledFace.query(on: db).filter(\.$id == id).filter(\.$collectionID == collectionID)
                .first()
        else { throw APIError.notFound("no face \(id.uuidString.lowercased()) in this collection") }
        await AuditLog.record(
            on: db, by: audit, action: "face.search", resourceType: "face", resourceID: id.uuidString.lowercased(),
            details: ["detail": "subject \(face.$subject.id.uuidString.lowercased())"])
        return face
    }

    /// Subjects by id, for naming search results (a replica will do: an erased subject is left out).
    func subjects(_ ids: [UUID]) async throws -> [UUID: Subject] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await router.read { db in try await Subject.query(on: db).filter(\.$id ~~ ids).all() }
        return Dictionary(rows.compactMap { s in s.id.map { ($0, s) } }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: - Export

    struct SubjectRecord {
        let collection: GalleryCollection
        let subject: Subject
        let faces: [EnrolledFace]
        let audit: [AuditEvent]
    }

    /// Everything stored about a subject, read from the primary so that it is complete; the export
    /// is audited before the subject's audit trail is read, so the trail includes it.
    func exportRecord(_ id: UUID, in collectionID: UUID, audit: AuditActor) async throws -> SubjectRecord {
        let db = try router.primary
        let collection = try await collection(collectionID, on: db)
        let subject = try await subject(id, in: collectionID, on: db)
        let faces = try await faces(of: id, on: db)
        await AuditLog.record(
            on: db, by: audit, action: "subject.export", resourceType: "subject",
            resourceID: id.uuidString.lowercased(), details: ["detail": "\(faces.count) faces"])
        let trail = try await AuditEvent.query(on: db).filter(\.$resourceType == "subject")
            .filter(\.$resourceID == id.uuidString.lowercased()).sort(\.$createdAt).all()
        return SubjectRecord(collection: collection, subject: subject, faces: faces, audit: trail)
    }
}
