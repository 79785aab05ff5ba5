import Fluent
import SQLKit

/// Collections, subjects, enrolled faces and the per-collection version counters.
struct CreateGallerySchema: AsyncMigration {
    var name: String { "CreateGallerySchema" }

    func prepare(on database: any Database) async throws {
        try await database.schema(GalleryCollection.schema)
            .id()
            .field("name", .string, .required)
            .field("description", .string)
            .field("created_at", .datetime)
            .unique(on: "name")
            .create()
        try await database.schema(Subject.schema)
            .id()
            .field("collection_id", .uuid, .required, .references(GalleryCollection.schema, .id, onDelete: .cascade))
            .field("external_id", .string, .required)
            .field("name", .string, .required)
            .field("metadata", .string, .required)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "collection_id", "external_id")
            .create()
        try await database.schema(EnrolledFace.schema)
            .id()
            .field("subject_id", .uuid, .required, .references(Subject.schema, .id, onDelete: .cascade))
            .field("collection_id", .uuid, .required, .references(GalleryCollection.schema, .id, onDelete: .cascade))
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
            .field("created_at", .datetime)
            .create()
        try await database.schema(GalleryVersion.schema)
            .id()
            .field("version", .int64, .required)
            .create()
        // The queries the routes make: a gallery's faces of one model (index loads), a subject's
        // faces and its duplicate check, a collection's subjects in creation order (paging).
        guard let sql = database as? any SQLDatabase else { return }
        for statement in [
            "CREATE INDEX faces_gallery_idx ON faces (collection_id, embedding_model, embedding_model_version)",
            "CREATE INDEX faces_subject_sha_idx ON faces (subject_id, image_sha256)",
            "CREATE INDEX subjects_paging_idx ON subjects (collection_id, created_at, id)",
        ] {
            try await sql.raw(SQLQueryString(statement)).run()
        }
    }

    func revert(on database: any Database) async throws {
        for schema in [
            GalleryVersion.schema, EnrolledFace.schema, Subject.schema, GalleryCollection.schema,
        ] {
            try await database.schema(schema).delete()
        }
    }
}

/// Each collection's recognizer (issue 21): existing collections were all SFace's.
struct AddCollectionRecognizer: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(GalleryCollection.schema)
            .field("recognition_model", .string, .required, .sql(.default("sface")))
            .update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(GalleryCollection.schema).deleteField("recognition_model").update()
    }
}
