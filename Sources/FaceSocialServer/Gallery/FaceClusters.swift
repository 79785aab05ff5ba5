import FaceKit
import FaceSearch
import Fluent
import Foundation
import SQLKit
import Synchronization

/// The unnamed faces' table and the collection counter their writes bump.
struct CreateUnnamedFaces: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(UnnamedFace.schema)
            .id()
            .field("collection_id", .uuid, .required, .references(GalleryCollection.schema, .id, onDelete: .cascade))
            .field("cluster_id", .uuid, .required)
            .field("embedding", .data, .required)
            .field("key_id", .string, .required)
            .field("embedding_model", .string, .required)
            .field("embedding_model_version", .string, .required)
            .field("quality", .float, .required)
            .field("box_x", .float, .required)
            .field("box_y", .float, .required)
            .field("box_width", .float, .required)
            .field("box_height", .float, .required)
            .field("image_sha256", .string, .required)
            .field("source", .string, .required)
            .field("created_at", .datetime)
            .create()
        try await database.schema(GalleryVersion.schema)
            .field("clusters_version", .int64, .required, .sql(.default(0)))
            .update()
        // Index loads (a collection's faces of one model), a cluster's faces, the duplicate check.
        guard let sql = database as? any SQLDatabase else { return }
        for statement in [
            "CREATE INDEX unnamed_faces_gallery_idx ON unnamed_faces (collection_id, embedding_model, embedding_model_version)",
            "CREATE INDEX unnamed_faces_cluster_idx ON unnamed_faces (collection_id, cluster_id)",
            "CREATE INDEX unnamed_faces_sha_idx ON unnamed_faces (collection_id, image_sha256)",
        ] {
            try await sql.raw(SQLQueryString(statement)).run()
        }
    }

    func revert(on database: any Database) async throws {
        try await database.schema(UnnamedFace.schema).delete()
        try await database.schema(GalleryVersion.schema).deleteField("clusters_version").update()
    }
}

/// Which cluster a new unnamed face joins: incremental single-linkage grouping. The face joins
/// every cluster holding a face at least `threshold` similar to it (the same-person threshold of
/// verification); when it links several, they merge into the largest. So the clusters are the
/// connected groups of "same person" pairs whatever order the faces came in, as Immich groups
/// faces and Azure's `Group` does, without rescanning the gallery for each face.
enum FaceClustering {
    struct Placement: Sendable, Equatable {
        let faceID: UUID
        let clusterID: UUID
        /// Clusters merged into `clusterID` by this face.
        let merged: [UUID]
    }

    /// Clusters looked at per face: more linked clusters than this at once only happens when the
    /// threshold is far too low for the model.
    static let linkLimit = 64

    /// Places a face (its normalised embedding) in `index`, whose subjects are clusters.
    static func place(
        _ vector: [Float], faceID: UUID, in index: inout EmbeddingIndex, threshold: Float,
        newCluster: () -> UUID = UUID.init
    ) -> Placement {
        let linked = index.search(vector, k: linkLimit).filter { $0.similarity >= threshold }.map(\.subjectID)
        guard !linked.isEmpty else {
            let cluster = newCluster()
            index.add(faceID: faceID, subjectID: cluster, vector: vector)
            return Placement(faceID: faceID, clusterID: cluster, merged: [])
        }
        // The largest keeps its id (fewest rows relabelled); ties go to the most similar.
        let sizes = linked.map { index.faceCount(subjectID: $0) }
        let target = linked[sizes.indices.max { sizes[$0] < sizes[$1] || (sizes[$0] == sizes[$1] && $0 > $1) }!]
        let merged = linked.filter { $0 != target }
        for cluster in merged { index.relabel(subjectID: cluster, to: target) }
        index.add(faceID: faceID, subjectID: target, vector: vector)
        return Placement(faceID: faceID, clusterID: target, merged: merged)
    }
}

extension FaceClustering {
    /// The connected groups of same-person pairs (cosine ≥ `threshold`) among `vectors`: what single
    /// linkage makes of them. Largest first (ties by first member), each group's members in order.
    /// Used when a face leaves a cluster, since the others may have been linked only through it.
    static func components(_ vectors: [[Float]], threshold: Float) -> [[Int]] {
        var parent = Array(vectors.indices)
        func root(_ i: Int) -> Int {
            var i = i
            while parent[i] != i {
                parent[i] = parent[parent[i]]
                i = parent[i]
            }
            return i
        }
        for i in vectors.indices {
            for j in (i + 1)..<vectors.count where root(i) != root(j) {
                if EmbeddingMath.cosine(vectors[i], vectors[j]) >= threshold { parent[root(j)] = root(i) }
            }
        }
        return Dictionary(grouping: vectors.indices, by: root).values.map { $0.sorted() }
            .sorted { $0.count > $1.count || ($0.count == $1.count && $0[0] < $1[0]) }
    }
}

/// The unnamed faces of each collection and model in memory, subjects being clusters, for the
/// clustering of new faces. Only writers use it, inside the transaction that has locked the
/// collection's counter row (`GalleryService.bumpClusters`): a writer takes the index out, uses
/// it if it was built at the counter's previous value (else reads the rows through its own
/// transaction), and puts it back after commit. A failed write simply leaves nothing behind.
final class ClusterIndexes: Sendable {
    struct Key: Hashable {
        let collectionID: UUID
        let model: EmbeddingModelKey
    }
    private struct Loaded {
        var index: EmbeddingIndex
        var version: Int64
    }
    private let loaded = Mutex<[Key: Loaded]>([:])
    private let loads = Mutex<Int>(0)
    let cipher: DataCipher

    init(cipher: DataCipher) { self.cipher = cipher }

    /// How many times an index was read from the database (tests watch it).
    var loadCount: Int { loads.withLock { $0 } }

    /// The index as of clusters version `version`, from memory or read through `db`.
    func take(_ key: Key, at version: Int64, on db: any Database) async throws -> EmbeddingIndex {
        if let kept = loaded.withLock({ $0.removeValue(forKey: key) }), kept.version == version { return kept.index }
        let rows = try await UnnamedFace.query(on: db)
            .filter(\.$collectionID == key.collectionID)
            .filter(\.$embeddingModel == key.model.id)
            .filter(\.$embeddingModelVersion == key.model.version)
            .all()
        let index = try embeddingIndex(rows, dimension: key.model.dimension, cipher: cipher) { $0.clusterID }
        loads.withLock { $0 += 1 }
        return index
    }

    /// After the write that took it committed at `version`.
    func put(_ key: Key, _ index: EmbeddingIndex, version: Int64) {
        loaded.withLock { map in
            if (map[key]?.version ?? -1) < version { map[key] = Loaded(index: index, version: version) }
        }
    }

    /// After a commit at `version` that changed the clusters without clustering (one named or
    /// erased): indexes of the version before get the change, any other is dropped.
    func update(_ collectionID: UUID, from previous: Int64, to version: Int64, _ change: (inout EmbeddingIndex) -> Void)
    {
        loaded.withLock { map in
            for key in map.keys where key.collectionID == collectionID {
                // Out of the map first, so the change happens in place rather than on a copy.
                guard var kept = map.removeValue(forKey: key), kept.version == previous else { continue }
                change(&kept.index)
                kept.version = version
                map[key] = kept
            }
        }
    }

    func forget(_ collectionID: UUID) {
        loaded.withLock { map in map = map.filter { $0.key.collectionID != collectionID } }
    }
}
