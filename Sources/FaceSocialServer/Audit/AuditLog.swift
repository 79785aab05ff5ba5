import Fluent
import Foundation
import SQLKit
import Vapor

public enum AuditOutcome: String, Sendable, Codable {
    case success, denied, failure
}

extension Request {
    /// Appends an audit row for this request's principal. A failed write is logged, never thrown:
    /// the response the caller gets must not depend on it.
    public func audit(
        action: String, resourceType: String, resourceID: String, outcome: AuditOutcome = .success,
        details: [String: String] = [:], actor: Principal? = nil
    ) async {
        let principal = actor ?? self.principal
        await AuditLog.append(
            on: db, logger: logger, actor: principal.id, actorType: principal.kind.rawValue, action: action,
            resourceType: resourceType, resourceID: resourceID, outcome: outcome,
            ip: clientAddress, requestID: context.requestID, details: details)
    }
}

public enum AuditLog {
    public static func append(
        on db: any Database, logger: Logger, actor: String, actorType: String, action: String,
        resourceType: String, resourceID: String, outcome: AuditOutcome, ip: String?, requestID: String?,
        details: [String: String] = [:]
    ) async {
        let detail =
            details.isEmpty
            ? nil
            : (try? JSONEncoder.sorted.encode(details)).map { String(decoding: $0, as: UTF8.self) }
        do {
            // A busy SQLite is waited out: a denied request must still leave its row.
            try await SQLiteBusy.retrying {
                try await AuditEvent(
                    actor: actor, actorType: actorType, action: action, resourceType: resourceType,
                    resourceID: String(resourceID.prefix(200)), outcome: outcome.rawValue, ip: ip,
                    requestID: requestID, detail: detail
                ).create(on: db)
            }
        } catch {
            logger.error("audit write failed", metadata: ["action": .string(action), "error": .string("\(error)")])
        }
    }

    /// Deletes rows older than the retention, inside the one window the delete trigger allows.
    @discardableResult
    public static func purge(on db: any Database, retentionDays: Int, now: Date = Date()) async throws -> Int {
        let cutoff = now.addingTimeInterval(-Double(retentionDays) * 86_400)
        return try await db.transaction { tx in
            guard let sql = tx as? any SQLDatabase else { return 0 }
            let count = try await AuditEvent.query(on: tx).filter(\.$createdAt < cutoff).count()
            guard count > 0 else { return 0 }
            try await sql.raw("INSERT INTO audit_purges DEFAULT VALUES").run()
            try await AuditEvent.query(on: tx).filter(\.$createdAt < cutoff).delete()
            try await sql.raw("DELETE FROM audit_purges").run()
            return count
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
