import Fluent
import Vapor

/// Audit rows for gallery actions, on the caller's database handle (inside its transaction, so a
/// write and its audit row commit together), with the request's real principal, client address
/// and request id.
enum Audit {
    static func record(
        _ req: Request, on db: any Database, action: String, resourceType: String, resourceID: UUID,
        outcome: String = "success", detail: String? = nil
    ) async throws {
        let principal = req.principal
        await AuditLog.append(
            on: db, logger: req.logger, actor: principal.id, actorType: principal.kind.rawValue, action: action,
            resourceType: resourceType, resourceID: resourceID.uuidString.lowercased(),
            outcome: outcome == "success" ? .success : .failure, ip: req.clientAddress,
            requestID: req.context.requestID, details: detail.map { ["detail": $0] } ?? [:])
    }
}
