import Fluent
import SQLKit

// The users, refresh tokens and API keys tables and their later columns. Their migration names
// are their type names, recorded in each database: a type here is never renamed.

/// `api_keys.expires_at` (nil for keys made before: they have no end).
struct AddAPIKeyExpiry: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(APIKey.schema).field("expires_at", .datetime).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(APIKey.schema).deleteField("expires_at").update()
    }
}

/// The per-user access-token version (`users.token_version`, 0 for existing rows).
struct AddUserTokenVersion: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema)
            .field("token_version", .int, .required, .sql(.default(0)))
            .update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).deleteField("token_version").update()
    }
}

struct CreateAuthTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema)
            .id()
            .field("email", .string, .required)
            .field("password_hash", .string, .required)
            .field("role", .string, .required)
            .field("collections", .string, .required)
            .field("is_active", .bool, .required)
            .field("created_at", .datetime)
            .unique(on: "email")
            .create()
        try await database.schema(RefreshToken.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("family_id", .uuid, .required)
            .field("token_hash", .string, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("revoked_at", .datetime)
            .field("created_at", .datetime)
            .unique(on: "token_hash")
            .create()
        try await database.schema(APIKey.schema)
            .id()
            .field("collection_id", .string, .required)
            .field("name", .string, .required)
            .field("scopes", .string, .required)
            .field("prefix", .string, .required)
            .field("key_hash", .string, .required)
            .field("created_by", .string, .required)
            .field("revoked_at", .datetime)
            .field("last_used_at", .datetime)
            .field("created_at", .datetime)
            .unique(on: "key_hash")
            .create()
        if let sql = database as? any SQLDatabase {
            try await sql.raw("CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id)").run()
            try await sql.raw("CREATE INDEX api_keys_collection_idx ON api_keys (collection_id)").run()
        }
    }

    func revert(on database: any Database) async throws {
        try await database.schema(APIKey.schema).delete()
        try await database.schema(RefreshToken.schema).delete()
        try await database.schema(User.schema).delete()
    }
}
