import Fluent
import Foundation
import SQLKit
import Vapor

public enum AuditOutcome: String, Sendable, Codable {
    case success, denied, failure
}

/// Who acted, from where and in which request: what every audit row records besides the action.
/// Taken from the request (`Request.auditActor`) so that code below the routes can audit too.
public struct AuditActor: Sendable {
    let id: String
    let type: String
    let ip: String?
    let requestID: String?
    let logger: Logger

    init(_ principal: Principal, ip: String?, requestID: String?, logger: Logger) {
        self.init(id: principal.id, type: principal.kind.rawValue, ip: ip, requestID: requestID, logger: logger)
    }

    private init(id: String, type: String, ip: String?, requestID: String?, logger: Logger) {
        (self.id, self.type, self.ip, self.requestID, self.logger) = (id, type, ip, requestID, logger)
    }

    /// The server itself or a command line tool, outside any request.
    static func system(_ name: String, logger: Logger) -> AuditActor {
        AuditActor(id: name, type: "system", ip: nil, requestID: nil, logger: logger)
    }
}

extension Request {
    /// This request's principal, client address and request id.
    public var auditActor: AuditActor {
        AuditActor(principal, ip: clientAddress, requestID: context.requestID, logger: logger)
    }

    /// Appends an audit row for this request's principal (or `actor`, for a sign-in that has no
    /// principal yet) on the request's database. A failed write is logged, never thrown: the
    /// response the caller gets must not depend on it.
    public func audit(
        action: String, resourceType: String, resourceID: String, outcome: AuditOutcome = .success,
        details: [String: String] = [:], actor: Principal? = nil
    ) async {
        let who =
            actor.map { AuditActor($0, ip: clientAddress, requestID: context.requestID, logger: logger) } ?? auditActor
        await AuditLog.record(
            on: db, by: who, action: action, resourceType: resourceType, resourceID: resourceID, outcome: outcome,
            details: details)
    }
}

public enum AuditLog {
    /// The one way to audit an action: on `db`, which may be the action's own transaction, so that
    /// a write and its audit row commit together.
    public static func record(
        on db: any Database, by actor: AuditActor, action: String, resourceType: String, resourceID: String,
        outcome: AuditOutcome = .success, details: [String: String] = [:]
    ) async {
        await append(
            on: db, logger: actor.logger, actor: actor.id, actorType: actor.type,
            action: action, resourceType: resourceType, resourceID: resourceID, outcome: outcome, ip: actor.ip,
            requestID: actor.requestID, details: details)
    }

    private static func append(
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
