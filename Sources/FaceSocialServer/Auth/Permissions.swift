import Vapor

/// What a principal may do. Routes ask for one permission; roles and API key scopes grant them.
public enum Permission: String, Sendable, CaseIterable, Codable {
    case faceAnalyze = "face:analyze"
    case faceEnroll = "face:enroll"
    case collectionsRead = "collections:read"
    case collectionsWrite = "collections:write"
    case systemMonitor = "system:monitor"
    case adminUsers = "admin:users"
    case adminSystem = "admin:system"

    /// The scopes an API key may carry: never system or admin rights.
    static let apiKeyScopes: Set<Permission> = [.faceAnalyze, .faceEnroll, .collectionsRead, .collectionsWrite]
}

public enum Role: String, Sendable, CaseIterable, Codable {
    case admin, `operator`, developer, user

    public var permissions: Set<Permission> {
        switch self {
        case .admin: Set(Permission.allCases)
        case .operator: [.faceAnalyze, .faceEnroll, .collectionsRead, .collectionsWrite, .systemMonitor]
        case .developer: [.faceAnalyze, .faceEnroll, .collectionsRead, .collectionsWrite]
        case .user: [.faceAnalyze, .collectionsRead]
        }
    }

    /// Admins and operators see every collection; the others only those assigned to them.
    var seesAllCollections: Bool { self == .admin || self == .operator }
}

/// Who is calling: a signed-in user, an API key bound to one collection, or nobody.
public struct Principal: Sendable {
    public enum Kind: String, Sendable {
        case user
        case apiKey = "api_key"
        case anonymous
        /// The metrics scraper, by `FACESOCIAL_METRICS_TOKEN`.
        case service
    }
    public enum Collections: Sendable, Equatable {
        case all
        case only(Set<String>)
    }

    public let kind: Kind
    /// The user id or API key id; "anonymous" for nobody.
    public let id: String
    public let role: Role?
    public let permissions: Set<Permission>
    public let collections: Collections
    /// The signed-in user's email, for audit details and `/v1/auth/me`.
    public let email: String?

    public static let anonymous = Principal(
        kind: .anonymous, id: "anonymous", role: nil, permissions: [], collections: .only([]), email: nil)

    /// Prometheus and its kind: monitoring only, no collection.
    public static let metricsScraper = Principal(
        kind: .service, id: "metrics", role: nil, permissions: [.systemMonitor], collections: .only([]), email: nil)

    public var isAuthenticated: Bool { kind != .anonymous }

    public func has(_ permission: Permission) -> Bool { permissions.contains(permission) }

    public func canAccess(collection id: String) -> Bool {
        switch collections {
        case .all: true
        case .only(let ids): ids.contains(id.lowercased())
        }
    }
}

struct PrincipalKey: StorageKey {
    typealias Value = Principal
}

extension Request {
    /// The caller, set by `AuthenticationMiddleware` (anonymous when it sent no credentials).
    public var principal: Principal { storage[PrincipalKey.self] ?? .anonymous }

    /// Refuses the request unless the caller holds `permission` (and, when given, may reach the
    /// collection): 401 for anonymous callers, 403 otherwise. Denials are audited.
    @discardableResult
    public func authorize(_ permission: Permission, collection: String? = nil) async throws -> Principal {
        let principal = self.principal
        guard principal.isAuthenticated else {
            await audit(
                action: "authz.denied", resourceType: collection == nil ? "route" : "collection",
                resourceID: collection ?? url.path, outcome: .denied, details: ["permission": permission.rawValue])
            throw APIError(.unauthorized, "UNAUTHORIZED", "this route needs a bearer token or an x-api-key")
        }
        let allowed = principal.has(permission) && (collection.map { principal.canAccess(collection: $0) } ?? true)
        guard allowed else {
            await audit(
                action: "authz.denied", resourceType: collection == nil ? "route" : "collection",
                resourceID: collection ?? url.path, outcome: .denied, details: ["permission": permission.rawValue])
            throw APIError(
                .forbidden, "FORBIDDEN",
                principal.has(permission)
                    ? "this principal has no access to collection \(collection ?? "")"
                    : "this principal lacks the \(permission.rawValue) permission")
        }
        return principal
    }
}

/// Guards a group of routes with one permission; `allowAnonymous` keeps them open to callers who
/// sent no credentials (the development setting for the stateless analysis routes).
struct RequirePermission: AsyncMiddleware {
    let permission: Permission
    var allowAnonymous = false

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if !(allowAnonymous && !request.principal.isAuthenticated) {
            try await request.authorize(permission)
        }
        return try await next.respond(to: request)
    }
}
