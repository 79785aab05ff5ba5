import FaceKit
import FaceSearch
import Fluent
import Foundation

/// A tenant's gallery: the people enrolled in it are searched together and only together.
public final class GalleryCollection: Model, @unchecked Sendable {
    public static let schema = "collections"
    @ID(key: .id) public var id: UUID?
    @Field(key: "name") public var name: String
    // Not `description`: models are CustomStringConvertible.
    @OptionalField(key: "description") public var about: String?
    /// The recognizer its faces are embedded with, named at creation and kept (a manifest id).
    @Field(key: "recognition_model") public var recognitionModel: String
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
    public init(id: UUID? = nil, name: String, description: String?, recognitionModel: String = "sface") {
        self.id = id
        self.name = name
        self.about = description
        self.recognitionModel = recognitionModel
    }
}

/// A person in a collection, known to the client by its own external id.
public final class Subject: Model, @unchecked Sendable {
    public static let schema = "subjects"
    @ID(key: .id) public var id: UUID?
    @Parent(key: "collection_id") public var collection: GalleryCollection
    @Field(key: "external_id") public var externalID: String
    @Field(key: "name") public var name: String
    /// Client metadata as a JSON object, stored as text so both databases treat it alike.
    @Field(key: "metadata") public var metadata: String
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    public init() {}
    public init(id: UUID? = nil, collectionID: UUID, externalID: String, name: String, metadata: String) {
        self.id = id
        self.$collection.id = collectionID
        self.externalID = externalID
        self.name = name
        self.metadata = metadata
    }
}

/// One enrolled face: its embedding sealed with AES-GCM, the model that computed it, and where it
/// was in the image. The image itself is never stored; its SHA-256 only refuses re-enrolment.
public final class EnrolledFace: Model, @unchecked Sendable {
    public static let schema = "faces"
    @ID(key: .id) public var id: UUID?
    @Parent(key: "subject_id") public var subject: Subject
    // Kept on the face too, so a gallery loads with one indexed query and no join.
    @Field(key: "collection_id") public var collectionID: UUID
    @Field(key: "embedding") public var embedding: Data
    @Field(key: "key_id") public var keyID: String
    @Field(key: "embedding_model") public var embeddingModel: String
    @Field(key: "embedding_model_version") public var embeddingModelVersion: String
    @Field(key: "quality") public var quality: Float
    @Field(key: "box_x") public var boxX: Float
    @Field(key: "box_y") public var boxY: Float
    @Field(key: "box_width") public var boxWidth: Float
    @Field(key: "box_height") public var boxHeight: Float
    @Field(key: "image_sha256") public var imageSHA256: String
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}

    /// The authenticated context of the sealed embedding: it ties the ciphertext to this row.
    public static func sealContext(_ id: UUID) -> String { "face:\(id.uuidString.lowercased())" }
}

/// A face enrolled without a subject (or kept from an identify call that found no match), in the
/// cluster of faces it resembles until someone names the cluster (Gallery/FaceClusters.swift).
/// Sealed like an enrolled face, under the same context: naming its cluster moves the row into
/// `faces` with the same id and the same sealed bytes.
public final class UnnamedFace: Model, @unchecked Sendable {
    public static let schema = "unnamed_faces"
    @ID(key: .id) public var id: UUID?
    @Field(key: "collection_id") public var collectionID: UUID
    @Field(key: "cluster_id") public var clusterID: UUID
    @Field(key: "embedding") public var embedding: Data
    @Field(key: "key_id") public var keyID: String
    @Field(key: "embedding_model") public var embeddingModel: String
    @Field(key: "embedding_model_version") public var embeddingModelVersion: String
    @Field(key: "quality") public var quality: Float
    @Field(key: "box_x") public var boxX: Float
    @Field(key: "box_y") public var boxY: Float
    @Field(key: "box_width") public var boxWidth: Float
    @Field(key: "box_height") public var boxHeight: Float
    @Field(key: "image_sha256") public var imageSHA256: String
    /// `enrol` or `identify`: how the face came in.
    @Field(key: "source") public var source: String
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
}

/// Both kinds of face row hold a sealed embedding under a key id (key rotation re-seals both)
/// and the same facts about the face.
protocol SealedEmbeddingRow: Model where IDValue == UUID {
    var collectionID: UUID { get set }
    var embedding: Data { get set }
    var keyID: String { get set }
    var embeddingModel: String { get set }
    var embeddingModelVersion: String { get set }
    var quality: Float { get set }
    var boxX: Float { get set }
    var boxY: Float { get set }
    var boxWidth: Float { get set }
    var boxHeight: Float { get set }
    var imageSHA256: String { get set }
}

extension EnrolledFace: SealedEmbeddingRow {}
extension UnnamedFace: SealedEmbeddingRow {}

extension SealedEmbeddingRow {
    /// A new row for a face found in an image: a fresh id, the embedding sealed under it.
    init(
        face box: Box, quality: Float, embedding: [Float],
        model: (id: String, version: String), collectionID: UUID, imageSHA256: String, cipher: DataCipher
    ) throws {
        self.init()
        let id = UUID()
        self.id = id
        (self.embedding, self.keyID) = try cipher.sealEmbedding(embedding, context: EnrolledFace.sealContext(id))
        (self.collectionID, self.embeddingModel, self.embeddingModelVersion) = (collectionID, model.id, model.version)
        self.quality = quality
        (boxX, boxY, boxWidth, boxHeight) = (box.x, box.y, box.width, box.height)
        self.imageSHA256 = imageSHA256
    }

    /// The same face as another kind of row: same id, same sealed bytes (the seal context is the id).
    init(copying other: some SealedEmbeddingRow) throws {
        self.init()
        id = try other.requireID()
        (collectionID, embedding, keyID) = (other.collectionID, other.embedding, other.keyID)
        (embeddingModel, embeddingModelVersion, quality) = (
            other.embeddingModel, other.embeddingModelVersion, other.quality
        )
        (boxX, boxY, boxWidth, boxHeight) = (other.boxX, other.boxY, other.boxWidth, other.boxHeight)
        imageSHA256 = other.imageSHA256
    }

    /// The row's embedding, opened.
    func openEmbedding(with cipher: DataCipher) throws -> [Float] {
        try cipher.openEmbedding(embedding, keyID: keyID, context: EnrolledFace.sealContext(try requireID()))
    }
}

/// The rows of one embedding model as an exact index, each under the subject `subject` gives it
/// (a person for enrolled faces, a cluster for unnamed ones). Rows of another length are skipped.
func embeddingIndex<Row: SealedEmbeddingRow>(
    _ rows: [Row], dimension: Int, cipher: DataCipher, subject: (Row) -> UUID
) throws -> EmbeddingIndex {
    var index = EmbeddingIndex(dimension: dimension)
    index.reserve(rows.count)
    for row in rows {
        let vector = try row.openEmbedding(with: cipher)
        guard vector.count == dimension else { continue }
        index.add(faceID: try row.requireID(), subjectID: subject(row), vector: vector)
    }
    return index
}

/// One counter per collection, bumped by every write to its gallery: other instances compare it
/// with the version their in-memory index was built from. `clusters_version` counts the writes to
/// its unnamed faces; the clustering checks its in-memory index against it.
public final class GalleryVersion: Model, @unchecked Sendable {
    public static let schema = "gallery_versions"
    /// The collection's id.
    @ID(key: .id) public var id: UUID?
    @Field(key: "version") public var version: Int64
    @Field(key: "clusters_version") public var clustersVersion: Int64

    public init() {}
    public init(collectionID: UUID, version: Int64 = 0) {
        self.id = collectionID
        self.version = version
        self.clustersVersion = 0
    }
}
