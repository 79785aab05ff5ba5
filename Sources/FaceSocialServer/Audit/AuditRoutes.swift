import Fluent
import Foundation
import Vapor

struct AuditEventDTO: Content {
    let id: String
    let time: String?
    let actor: String
    let actorType: String
    let action: String
    let resourceType: String
    let resourceID: String
    let outcome: String
    let ip: String?
    let requestID: String?
    let details: [String: String]

    init(_ e: AuditEvent) {
        id = e.id?.uuidString.lowercased() ?? ""
        time = iso8601(e.createdAt)
        actor = e.actor
        actorType = e.actorType
        action = e.action
        resourceType = e.resourceType
        resourceID = e.resourceID
        outcome = e.outcome
        ip = e.ip
        requestID = e.requestID
        details = e.detail.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) } ?? [:]
    }
}

struct AuditPage: Content {
    let items: [AuditEventDTO]
    let total: Int
    let limit: Int
    let offset: Int
}

/// `GET /v1/audit`: the audit log, newest first, for admins.
struct AuditRoutes: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("v1", "audit", use: list)
    }

    @Sendable
    func list(_ req: Request) async throws -> Envelope<AuditPage> {
        try await req.authorize(.adminSystem)
        let query = AuditEvent.query(on: req.db)
        func text(_ name: String) throws -> String? {
            guard let value = req.query[String.self, at: name], !value.isEmpty else { return nil }
            guard value.count <= 200 else { throw APIError.validation("\(name) is too long", field: name) }
            return value
        }
        func date(_ name: String) throws -> Date? {
            guard let value = try text(name) else { return nil }
            guard let date = try? Date(value, strategy: .iso8601) else {
                throw APIError.validation("\(name) must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", field: name)
            }
            return date
        }
        func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let raw = try text(name) else { return fallback }
            guard let value = Int(raw), range.contains(value) else {
                throw APIError.validation("\(name) must be an integer in \(range)", field: name)
            }
            return value
        }
        if let actor = try text("actor") { query.filter(\.$actor == actor) }
        if let action = try text("action") {
            // `auth.*` selects a family of actions.
            if action.hasSuffix("*") {
                query.filter(\.$action =~ String(action.dropLast()))
            } else {
                query.filter(\.$action == action)
            }
        }
        if let type = try text("resource_type") { query.filter(\.$resourceType == type) }
        if let id = try text("resource_id") { query.filter(\.$resourceID == id) }
        if let outcome = try text("outcome") {
            guard AuditOutcome(rawValue: outcome) != nil else {
                throw APIError.validation("outcome must be success, denied or failure", field: "outcome")
            }
            query.filter(\.$outcome == outcome)
        }
        if let since = try date("since") { query.filter(\.$createdAt >= since) }
        if let until = try date("until") { query.filter(\.$createdAt < until) }
        let limit = try integer("limit", 100, 1...1000)
        let offset = try integer("offset", 0, 0...10_000_000)
        let total = try await query.copy().count()
        let rows = try await query.sort(\.$createdAt, .descending).range(offset..<(offset + limit)).all()
        await req.audit(action: "audit.read", resourceType: "audit_log", resourceID: "*")
        return req.envelope(
            AuditPage(items: rows.map(AuditEventDTO.init), total: total, limit: limit, offset: offset))
    }
}
