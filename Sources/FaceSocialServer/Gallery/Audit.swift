import Fluent
import Vapor

/// Writes audit rows. There are no accounts yet, so the actor is "anonymous" until issue 6 adds
/// authentication; the row still records the request id and client address.
enum Audit {
    static func record(
        _ req: Request, on db: any Database, action: String, resourceType: String, resourceID: UUID,
        outcome: String = "success", detail: String? = nil
    ) async throws {
        try await AuditEvent(
            actor: "anonymous", action: action, resourceType: resourceType,
            resourceID: resourceID.uuidString.lowercased(), outcome: outcome, ip: req.remoteAddress?.ipAddress,
            requestID: req.context.requestID, detail: detail
        ).create(on: db)
    }
}
