import Fluent
import Foundation

/// A tenant's gallery: the people enrolled in it are searched together and only together.
public final class GalleryCollection: Model, @unchecked Sendable {
    public static let schema = "collections"
    @ID(key: .id) public var id: UUID?
    @Field(key: "name") public var name: String
    // Not `description`: models are CustomStringConvertible.
    @OptionalField(key: "description") public var about: String?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
    public init(id: UUID? = nil, name: String, description: String?) {
        self.id = id
        self.name = name
        self.about = description
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

/// One counter per collection, bumped by every write to its gallery: other instances compare it
/// with the version their in-memory index was built from.
public final class GalleryVersion: Model, @unchecked Sendable {
    public static let schema = "gallery_versions"
    /// The collection's id.
    @ID(key: .id) public var id: UUID?
    @Field(key: "version") public var version: Int64

    public init() {}
    public init(collectionID: UUID, version: Int64 = 0) {
        self.id = collectionID
        self.version = version
    }
}
