import Fluent

/// Every migration, in order: the gallery's (Database/GalleryMigrations.swift), the accounts'
/// (Auth/AuthMigrations.swift), the audit log's (Audit/AuditEvent.swift) and the kept answers of
/// idempotent requests (Gallery/IdempotentRequests.swift). `facesocial migrate`
/// runs them; `serve` runs them at start too (FACESOCIAL_AUTO_MIGRATE=false leaves that to the
/// operator). A new migration goes at the end; the order of those already applied never changes.
public enum SchemaMigrations {
    public static let all: [any Migration] = [
        CreateGallerySchema(), CreateAuthTables(), CreateAuditEvents(), AddUserTokenVersion(), AddAPIKeyExpiry(),
        CreateIdempotencyKeys(), CreateEnrolJobs(), CreateUnnamedFaces(), AddCollectionRecognizer(),
    ]
}
