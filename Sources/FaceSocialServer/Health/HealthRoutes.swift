import Fluent
import ModelRuntime
import SQLKit
import Vapor

/// `/health` answers as long as the process serves HTTP; `/health/ready` checks what requests
/// depend on: the database, the cache and the models the operator pinned.
struct HealthRoutes: RouteCollection {
    let registry: ModelRegistry
    let pinnedModels: [String]
    var security: SecurityServices? = nil

    struct Check: Content {
        let status: String
        let detail: String?
    }

    struct Readiness: Content {
        let status: String
        let checks: [String: Check]
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("health") { req in req.envelope(["status": "ok"]) }
        routes.get("health", "ready", use: ready)
    }

    @Sendable
    func ready(_ req: Request) async throws -> Response {
        var checks: [String: Check] = [:]
        do {
            guard let sql = req.db as? any SQLDatabase else {
                throw Abort(.internalServerError, reason: "not an SQL database")
            }
            _ = try await sql.raw("SELECT 1").all()
            checks["database"] = Check(status: "ok", detail: nil)
        } catch {
            checks["database"] = Check(status: "failing", detail: "\(error)")
        }
        // A Redis outage degrades (local limits, no shared cache) but the server still serves.
        if let redis = security?.redis {
            if let failure = await redis.probe() {
                checks["cache"] = Check(status: "degraded", detail: "redis unreachable (\(failure)); using in-memory")
            } else {
                checks["cache"] = Check(status: "ok", detail: "redis")
            }
        } else {
            checks["cache"] = Check(status: "ok", detail: "in-memory")
        }
        for id in pinnedModels {
            let status = await registry.status(id)
            let ok = status?.state == .loaded
            checks["model:\(id)"] = Check(
                status: ok ? "ok" : "failing", detail: ok ? nil : (status?.failure ?? status?.state.rawValue))
        }
        let ready = checks.values.allSatisfy { $0.status != "failing" }
        let degraded = checks.values.contains { $0.status == "degraded" }
        let response = Response(status: ready ? .ok : .serviceUnavailable)
        let status = !ready ? "not_ready" : degraded ? "degraded" : "ready"
        try response.content.encode(req.envelope(Readiness(status: status, checks: checks)))
        return response
    }
}
