import Fluent
import Foundation
import SQLKit

/// An append-only record of who did what to which resource, with the outcome. A superset of the
/// galleries branch's row: the same columns plus `actor_type`.
public final class AuditEvent: Model, @unchecked Sendable {
    public static let schema = "audit_events"
    @ID(key: .id) public var id: UUID?
    @Field(key: "actor") public var actor: String
    @Field(key: "actor_type") public var actorType: String
    @Field(key: "action") public var action: String
    @Field(key: "resource_type") public var resourceType: String
    @Field(key: "resource_id") public var resourceID: String
    @Field(key: "outcome") public var outcome: String
    @OptionalField(key: "ip") public var ip: String?
    @OptionalField(key: "request_id") public var requestID: String?
    /// A JSON object as text (never image bytes nor embeddings).
    @OptionalField(key: "detail") public var detail: String?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
    public init(
        actor: String, actorType: String, action: String, resourceType: String, resourceID: String,
        outcome: String, ip: String?, requestID: String?, detail: String?
    ) {
        self.actor = actor
        self.actorType = actorType
        self.action = action
        self.resourceType = resourceType
        self.resourceID = resourceID
        self.outcome = outcome
        self.ip = ip
        self.requestID = requestID
        self.detail = detail
    }
}

/// The audit table, with triggers that refuse UPDATE always and DELETE outside a retention purge
/// (a purge opens a row in `audit_purges` for the length of its transaction).
struct CreateAuditEvents: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(AuditEvent.schema)
            .id()
            .field("actor", .string, .required)
            .field("actor_type", .string, .required)
            .field("action", .string, .required)
            .field("resource_type", .string, .required)
            .field("resource_id", .string, .required)
            .field("outcome", .string, .required)
            .field("ip", .string)
            .field("request_id", .string)
            .field("detail", .string)
            .field("created_at", .datetime)
            .create()
        try await database.schema("audit_purges").field("id", .int, .identifier(auto: true)).create()
        guard let sql = database as? any SQLDatabase else { return }
        try await sql.raw("CREATE INDEX audit_created_idx ON audit_events (created_at)").run()
        try await sql.raw("CREATE INDEX audit_actor_idx ON audit_events (actor, created_at)").run()
        try await sql.raw("CREATE INDEX audit_resource_idx ON audit_events (resource_type, resource_id, created_at)")
            .run()
        if sql.dialect.name == "sqlite" {
            try await sql.raw(
                """
                CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
                BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
                """
            ).run()
            try await sql.raw(
                """
                CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
                WHEN NOT EXISTS (SELECT 1 FROM audit_purges)
                BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
                """
            ).run()
        } else {
            // PostgreSQL: the same rule as a PL/pgSQL trigger function.
            try await sql.raw(
                """
                CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
                BEGIN
                    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_purges) THEN RETURN OLD; END IF;
                    RAISE EXCEPTION 'audit_events is append-only';
                END; $$ LANGUAGE plpgsql
                """
            ).run()
            try await sql.raw(
                """
                CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
                FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
                """
            ).run()
        }
    }

    func revert(on database: any Database) async throws {
        if let sql = database as? any SQLDatabase {
            if sql.dialect.name == "sqlite" {
                try await sql.raw("DROP TRIGGER IF EXISTS audit_events_no_update").run()
                try await sql.raw("DROP TRIGGER IF EXISTS audit_events_no_delete").run()
            } else {
                try await sql.raw("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events").run()
                try await sql.raw("DROP FUNCTION IF EXISTS audit_events_append_only()").run()
            }
        }
        try await database.schema("audit_purges").delete()
        try await database.schema(AuditEvent.schema).delete()
    }
}
