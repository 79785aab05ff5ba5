import Fluent
import Foundation
import Vapor

/// Database work the command line runs outside the server: migrations and key rotation.
public enum DataMaintenance {
    /// An application with only the database configured (no models, no routes).
    public static func withDatabase<T>(_ config: AppConfig, _ body: (Application) async throws -> T) async throws -> T {
        let app = try await Application.make(.custom(name: "maintenance"))
        do {
            try DatabaseSetup.configure(app, config: config)
            let result = try await body(app)
            try await app.asyncShutdown()
            return result
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
    }

    /// Applies pending migrations on the primary; returns the names of those applied.
    public static func migrate(_ config: AppConfig) async throws -> [String] {
        try await withDatabase(config) { app in
            let before = try await appliedMigrations(app)
            try await app.autoMigrate()
            let after = try await appliedMigrations(app)
            return after.filter { !before.contains($0) }
        }
    }

    static func appliedMigrations(_ app: Application) async throws -> [String] {
        // Fluent's own log table; absent before the first run.
        (try? await MigrationLog.query(on: try app.databaseRouter.primary).all().map(\.name)) ?? []
    }

    public struct RotationReport: Sendable {
        public var resealed = 0
        public var alreadyCurrent = 0
        public var keyID = ""
    }

    /// Re-seals every embedding not under the current key with the current key, in batches, each
    /// batch in its own transaction. Rows under a key that is not configured stop the run with an
    /// error naming the key; nothing already re-sealed is lost, and a rerun continues.
    public static func rotateDataKeys(_ config: AppConfig, batchSize: Int = 500) async throws -> RotationReport {
        let config = try config.withInstallationSecrets()
        let cipher = try DataCipher(config: config)
        return try await withDatabase(config) { app in
            let db = try app.databaseRouter.primary
            var report = RotationReport(keyID: cipher.currentKeyID)
            for table in [EnrolledFace.self, UnnamedFace.self] as [any SealedEmbeddingRow.Type] {
                let (resealed, current) = try await reseal(table, with: cipher, on: db, batchSize: batchSize)
                report.resealed += resealed
                report.alreadyCurrent += current
            }
            return report
        }
    }

    /// Re-seals one table's rows not under the current key, a batch per transaction.
    private static func reseal<Row: SealedEmbeddingRow>(
        _: Row.Type, with cipher: DataCipher, on db: any Database, batchSize: Int
    ) async throws -> (resealed: Int, current: Int) {
        let current = try await Row.query(on: db).filter("key_id", .equal, cipher.currentKeyID).count()
        var resealed = 0
        while true {
            let rows = try await Row.query(on: db).filter("key_id", .notEqual, cipher.currentKeyID)
                .limit(batchSize).all()
            if rows.isEmpty { break }
            try await db.transaction { tx in
                for row in rows {
                    let context = EnrolledFace.sealContext(try row.requireID())
                    let plain = try cipher.open(row.embedding, keyID: row.keyID, context: context)
                    let (sealed, keyID) = try cipher.seal(plain, context: context)
                    row.embedding = sealed
                    row.keyID = keyID
                    try await row.update(on: tx)
                }
            }
            resealed += rows.count
        }
        return (resealed, current)
    }
}
