import Crypto
import FaceKit
import FaceSearch
import Fluent
import Foundation
import SQLKit

/// The rows of unnamed faces and their clusters. Every write locks the collection's counter row
/// first (`GalleryService.bumpClusters`), so writes to one collection's clusters take turns on
/// every instance, and the clustering sees every face stored before it.
extension GalleryStore {
    /// 409 `DUPLICATE_IMAGE` when the collection already holds unnamed faces of this image.
    func refuseUnnamedDuplicate(collectionID: UUID, imageSHA256 digest: String, on db: any Database) async throws {
        if try await UnnamedFace.query(on: db).filter(\.$collectionID == collectionID)
            .filter(\.$imageSHA256 == digest).first() != nil
        {
            throw APIError(
                .conflict, "DUPLICATE_IMAGE", "this image's faces are already in this collection's clusters",
                details: ["image_sha256": digest])
        }
    }

    /// Stores unnamed faces of one image, each placed in a cluster, in one transaction.
    func storeUnnamed(
        _ faces: [(row: UnnamedFace, vector: [Float])], collectionID: UUID, imageSHA256 digest: String,
        model: EmbeddingModelKey, threshold: Float
    ) async throws -> [FaceClustering.Placement] {
        let key = ClusterIndexes.Key(collectionID: collectionID, model: model)
        let (placements, index, version) = try await router.primary.transaction { tx in
            let version = try await gallery.bumpClusters(collectionID, on: tx).clusters
            try await refuseUnnamedDuplicate(collectionID: collectionID, imageSHA256: digest, on: tx)
            var index = try await gallery.clusterIndexes.take(key, at: version - 1, on: tx)
            var placements: [FaceClustering.Placement] = []
            for (row, vector) in faces {
                let placed = FaceClustering.place(vector, faceID: try row.requireID(), in: &index, threshold: threshold)
                row.clusterID = placed.clusterID
                try await row.create(on: tx)
                if !placed.merged.isEmpty {
                    try await UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                        .filter(\.$clusterID ~~ placed.merged).set(\.$clusterID, to: placed.clusterID).update()
                }
                placements.append(placed)
            }
            return (placements, index, version)
        }
        gallery.clusterIndexes.put(key, index, version: version)
        return placements
    }

    struct ClusterSummary {
        let id: UUID
        let size: Int
        /// The cluster's best faces by quality, at most `facesPerCluster` of them.
        let faces: [UnnamedFace]
    }

    struct ClusterPage {
        let clusters: [ClusterSummary]
        let total: Int
    }

    /// A page of a collection's clusters, largest first (a replica will do).
    func clusters(in collectionID: UUID, minSize: Int, limit: Int, offset: Int, facesPerCluster: Int) async throws
        -> ClusterPage
    {
        try await router.read { db in
            _ = try await collection(collectionID, on: db)
            let sql = db as! any SQLDatabase
            let total =
                try await sql.raw(
                    """
                    SELECT COUNT(*) AS n FROM (SELECT cluster_id FROM unnamed_faces WHERE collection_id = \(bind: collectionID)
                    GROUP BY cluster_id HAVING COUNT(*) >= \(bind: minSize)) AS sized
                    """
                ).first()?.decode(column: "n", as: Int.self) ?? 0
            let rows = try await sql.raw(
                """
                SELECT cluster_id, COUNT(*) AS size FROM unnamed_faces WHERE collection_id = \(bind: collectionID)
                GROUP BY cluster_id HAVING COUNT(*) >= \(bind: minSize)
                ORDER BY size DESC, cluster_id LIMIT \(bind: limit) OFFSET \(bind: offset)
                """
            ).all()
            let sizes = try rows.map {
                (try $0.decode(column: "cluster_id", as: UUID.self), try $0.decode(column: "size", as: Int.self))
            }
            let faces = try await unnamedFaces(collectionID, clusters: sizes.map(\.0), on: db)
            let grouped = Dictionary(grouping: faces, by: \.clusterID)
            return ClusterPage(
                clusters: sizes.map { id, size in
                    ClusterSummary(
                        id: id, size: size,
                        faces: Array((grouped[id] ?? []).sorted { $0.quality > $1.quality }.prefix(facesPerCluster)))
                }, total: total)
        }
    }

    /// One cluster with all its faces, best quality first; 404 when the collection has no such cluster.
    func cluster(_ clusterID: UUID, in collectionID: UUID) async throws -> ClusterSummary {
        try await router.read { db in
            _ = try await collection(collectionID, on: db)
            let faces = try await unnamedFaces(collectionID, clusters: [clusterID], on: db)
            guard !faces.isEmpty else { throw Self.noCluster(clusterID) }
            return ClusterSummary(id: clusterID, size: faces.count, faces: faces.sorted { $0.quality > $1.quality })
        }
    }

    func faceCount(of subjectID: UUID) async throws -> Int {
        try await EnrolledFace.query(on: try router.primary).filter(\.$subject.$id == subjectID).count()
    }

    static func noCluster(_ id: UUID) -> APIError {
        APIError.notFound("no cluster \(id.uuidString.lowercased()) in this collection")
    }

    /// The faces of some clusters, without their sealed embeddings.
    private func unnamedFaces(_ collectionID: UUID, clusters: [UUID], on db: any Database) async throws
        -> [UnnamedFace]
    {
        guard !clusters.isEmpty else { return [] }
        return try await UnnamedFace.query(on: db).filter(\.$collectionID == collectionID)
            .filter(\.$clusterID ~~ clusters)
            .field(\.$id).field(\.$collectionID).field(\.$clusterID).field(\.$quality).field(\.$boxX).field(\.$boxY)
            .field(\.$boxWidth).field(\.$boxHeight).field(\.$embeddingModel).field(\.$embeddingModelVersion)
            .field(\.$source).field(\.$createdAt)
            .all()
    }

    /// Who a named cluster becomes: an existing subject, or a new one.
    enum ClusterTarget {
        case subject(UUID)
        case new(externalID: String, name: String, metadata: String)
    }

    struct Assigned {
        let subject: Subject
        let faces: [EnrolledFace]
        /// The moved faces' embeddings, for the search index.
        let vectors: [[Float]]
        let version: Int64
    }

    /// Names a cluster: its faces move to the subject (same ids, same sealed embeddings) in one
    /// transaction with the audit row.
    func assignCluster(_ clusterID: UUID, in collectionID: UUID, to target: ClusterTarget, audit: AuditActor)
        async throws -> Assigned
    {
        let (assigned, clusters) = try await router.primary.transaction { tx -> (Assigned, Int64) in
            let (version, clusters) = try await gallery.bumpClusters(collectionID, searchable: true, on: tx)
            let rows = try await UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                .filter(\.$clusterID == clusterID).all()
            guard !rows.isEmpty else { throw Self.noCluster(clusterID) }
            let subject: Subject
            switch target {
            case .subject(let id):
                subject = try await self.subject(id, in: collectionID, on: tx)
            case .new(let externalID, let name, let metadata):
                if try await self.subject(externalID: externalID, in: collectionID, on: tx) != nil {
                    throw Self.conflict(
                        "a subject with external_id \"\(externalID.prefix(60))\" exists in this collection; "
                            + "send its subject_id to add the cluster to it")
                }
                subject = Subject(
                    id: UUID(), collectionID: collectionID, externalID: externalID, name: name, metadata: metadata)
                try await subject.create(on: tx)
            }
            var faces: [EnrolledFace] = []
            var vectors: [[Float]] = []
            for row in rows {
                let face = try EnrolledFace(copying: row)
                face.$subject.id = try subject.requireID()
                vectors.append(try row.openEmbedding(with: gallery.cipher))
                try await face.create(on: tx)
                faces.append(face)
            }
            try await UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                .filter(\.$clusterID == clusterID).delete()
            await AuditLog.record(
                on: tx, by: audit, action: "cluster.assign", resourceType: "subject",
                resourceID: try subject.requireID().uuidString.lowercased(),
                details: ["detail": "cluster \(clusterID.uuidString.lowercased()), \(rows.count) faces"])
            return (Assigned(subject: subject, faces: faces, vectors: vectors, version: version), clusters)
        }
        dropFromClusterIndexes(clusterID, in: collectionID, clustersVersion: clusters)
        return assigned
    }

    /// Erases a cluster's faces (a stranger's, say), audited; returns how many.
    func eraseCluster(_ clusterID: UUID, in collectionID: UUID, audit: AuditActor) async throws -> Int {
        let (count, clusters) = try await router.primary.transaction { tx -> (Int, Int64) in
            let clusters = try await gallery.bumpClusters(collectionID, on: tx).clusters
            let query = UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                .filter(\.$clusterID == clusterID)
            let count = try await query.count()
            guard count > 0 else { throw Self.noCluster(clusterID) }
            try await UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                .filter(\.$clusterID == clusterID).delete()
            await AuditLog.record(
                on: tx, by: audit, action: "cluster.erase", resourceType: "cluster",
                resourceID: clusterID.uuidString.lowercased(), details: ["detail": "\(count) faces erased"])
            return (count, clusters)
        }
        dropFromClusterIndexes(clusterID, in: collectionID, clustersVersion: clusters)
        return count
    }

    /// What is left of a cluster after one of its faces was erased.
    struct ClusterRemains {
        let erased: UUID
        /// The groups the other faces still form, largest first; the first keeps the cluster's id.
        let clusters: [(id: UUID, size: Int)]
    }

    /// Erases one face of a cluster (a wrong face in a group), audited. Single linkage may have
    /// joined the others only through that face, so they are grouped again at `threshold`: the
    /// largest group keeps the cluster's id, every other group gets a new one.
    func eraseUnnamedFace(
        _ faceID: UUID, cluster clusterID: UUID, in collectionID: UUID, threshold: Float, audit: AuditActor
    ) async throws -> ClusterRemains {
        let remains = try await router.primary.transaction { tx -> ClusterRemains in
            _ = try await gallery.bumpClusters(collectionID, on: tx)
            let rows = try await UnnamedFace.query(on: tx).filter(\.$collectionID == collectionID)
                .filter(\.$clusterID == clusterID).all()
            guard !rows.isEmpty else { throw Self.noCluster(clusterID) }
            guard let face = rows.first(where: { $0.id == faceID }) else {
                throw APIError.notFound(
                    "no face \(faceID.uuidString.lowercased()) in cluster \(clusterID.uuidString.lowercased())")
            }
            try await face.delete(on: tx)
            let rest = rows.filter { $0.id != faceID }
            let groups = FaceClustering.components(
                try rest.map { try $0.openEmbedding(with: gallery.cipher) }, threshold: threshold)
            var clusters: [(id: UUID, size: Int)] = []
            for (n, group) in groups.enumerated() {
                let id = n == 0 ? clusterID : UUID()
                if n > 0 {
                    try await UnnamedFace.query(on: tx).filter(\.$id ~~ group.map { rest[$0].id! })
                        .set(\.$clusterID, to: id).update()
                }
                clusters.append((id, group.count))
            }
            await AuditLog.record(
                on: tx, by: audit, action: "cluster.face.erase", resourceType: "face",
                resourceID: faceID.uuidString.lowercased(),
                details: [
                    "detail": "from cluster \(clusterID.uuidString.lowercased()); \(rest.count) faces left in "
                        + "\(clusters.count) clusters"
                ])
            return ClusterRemains(erased: faceID, clusters: clusters)
        }
        // The loaded indexes hold the old grouping: the next writer reads the rows.
        gallery.clusterIndexes.forget(collectionID)
        return remains
    }

    /// After a commit that removed a cluster: the loaded index of the previous version loses it;
    /// any other is dropped (the next writer reads the rows).
    private func dropFromClusterIndexes(_ clusterID: UUID, in collectionID: UUID, clustersVersion: Int64) {
        gallery.clusterIndexes.update(collectionID, from: clustersVersion - 1, to: clustersVersion) { index in
            index.remove(subjectID: clusterID)
        }
    }
}

/// What the gallery does with unnamed faces: enrol them into clusters, keep the unknown faces of
/// an identify call, name a cluster, erase one.
extension GalleryUseCases {
    struct EnrolledUnnamed {
        let faces: [(row: UnnamedFace, placement: FaceClustering.Placement)]
        let facesDetected: Int
        let unindexed: [(face: FaceReport, problems: [QualityProblem])]
    }

    /// Detects, embeds and seals the faces of one image, and stores them unnamed, each in the
    /// cluster of the faces it resembles (a new one when none does).
    func enrolUnnamed(
        _ bytes: [UInt8], parameters p: FaceParameters, mode: EnrolMode, quality filter: QualityFilter,
        collectionID: UUID, threshold: Float, context: RequestContext
    ) async throws -> EnrolledUnnamed {
        let digest = Secrets.hex(SHA256.hash(data: bytes))
        try await store.requireCollection(collectionID)
        try await store.refuseUnnamedDuplicate(
            collectionID: collectionID, imageSHA256: digest, on: try store.router.primary)
        let chosen = try await chooseFaces(
            bytes, parameters: p, recognizer: try await model(of: collectionID).recognizer, mode: mode, quality: filter,
            context: context)
        let stored = try await storeUnnamed(
            chosen.faces, source: "enrol", imageSHA256: digest, collectionID: collectionID, threshold: threshold)
        return EnrolledUnnamed(faces: stored, facesDetected: chosen.facesDetected, unindexed: chosen.unindexed)
    }

    /// Keeps faces an identify call found no match for (when the caller asked): those passing the
    /// default quality level join the clusters. Answers by position in `faces`. An image whose
    /// faces were kept before is not kept again (nothing is answered for it).
    func keepUnmatched(
        _ faces: [FaceReport], imageSHA256 digest: String, collectionID: UUID, threshold: Float
    ) async throws -> [Int: (row: UnnamedFace, placement: FaceClustering.Placement)] {
        let limits = QualityFilter.auto.limits
        let keep = faces.indices.compactMap { i -> (Int, (report: FaceReport, embedding: [Float]))? in
            guard let embedding = faces[i].embedding, limits.map(faces[i].quality.problems)?.isEmpty ?? true else {
                return nil
            }
            return (i, (faces[i], embedding))
        }
        guard !keep.isEmpty else { return [:] }
        do {
            let stored = try await storeUnnamed(
                keep.map(\.1), source: "identify", imageSHA256: digest, collectionID: collectionID,
                threshold: threshold)
            return Dictionary(uniqueKeysWithValues: zip(keep.map(\.0), stored).map { ($0, $1) })
        } catch let error as APIError where error.code == "DUPLICATE_IMAGE" {
            return [:]
        }
    }

    private func storeUnnamed(
        _ faces: [(report: FaceReport, embedding: [Float])], source: String, imageSHA256 digest: String,
        collectionID: UUID, threshold: Float
    ) async throws -> [(row: UnnamedFace, placement: FaceClustering.Placement)] {
        let model = try await model(of: collectionID).key
        let rows = try faces.map { report, embedding -> (row: UnnamedFace, vector: [Float]) in
            let face = try UnnamedFace(
                face: report.face.box, quality: report.quality.score, embedding: embedding,
                model: (model.id, model.version), collectionID: collectionID, imageSHA256: digest,
                cipher: gallery.cipher)
            face.source = source
            return (face, EmbeddingMath.normalized(embedding))
        }
        let placements = try await store.storeUnnamed(
            rows, collectionID: collectionID, imageSHA256: digest, model: model, threshold: threshold)
        return zip(rows, placements).map { ($0.row, $1) }
    }

    /// Names a cluster as a new or existing subject; its faces join the search index at once.
    func assignCluster(
        _ clusterID: UUID, in collectionID: UUID, to target: GalleryStore.ClusterTarget, audit: AuditActor
    ) async throws -> GalleryStore.Assigned {
        let assigned = try await store.assignCluster(clusterID, in: collectionID, to: target, audit: audit)
        let subjectID = try assigned.subject.requireID()
        gallery.committed(collectionID, version: assigned.version) { indexModel, index in
            for (face, vector) in zip(assigned.faces, assigned.vectors)
            where indexModel.id == face.embeddingModel && indexModel.version == face.embeddingModelVersion {
                index.add(faceID: face.id!, subjectID: subjectID, vector: vector)
            }
        }
        return assigned
    }
}
