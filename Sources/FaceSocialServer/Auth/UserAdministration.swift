import Fluent
import Foundation
import Vapor

/// Users as administrators change them: `POST /v1/users`, `PATCH /v1/users/{id}` and
/// `facesocial users create` go through here, and the rules that guard them are plain code.
enum Users {
    /// Validates and creates a user.
    static func create(
        email: String, password: String, role: String, collections: [String], cost: Int, on db: any Database,
        threadPool: NIOThreadPool
    ) async throws -> User {
        let email = try EmailAddress.validated(email)
        try PasswordPolicy.check(password, email: email)
        let role = try Role.named(role)
        for id in collections { try Collections.validate(id) }
        guard try await User.query(on: db).filter(\.$email == email).count() == 0 else {
            throw APIError(.conflict, "CONFLICT", "a user with this email exists", details: ["field": "email"])
        }
        let hash = try await threadPool.runIfActive { try Bcrypt.hash(password, cost: cost) }
        let user = User(email: email, passwordHash: hash, role: role, collections: collections)
        try await user.create(on: db)
        return user
    }

    /// What an update may change; nil leaves a field as it is.
    struct Change: Sendable {
        var role: Role?
        var collections: [String]?
        var isActive: Bool?
        /// The new password's hash (bcrypt runs before the transaction).
        var passwordHash: String?

        /// Applies the change and names the fields it changed. Access tokens issued before a new
        /// role, password or disabling end on their next request (`tokenVersion`).
        func apply(to user: User) -> [String] {
            var changed: [String] = []
            if let role, role.rawValue != user.role {
                user.role = role.rawValue
                changed.append("role")
            }
            if let collections {
                user.collections = collections
                changed.append("collections")
            }
            if let isActive, isActive != user.isActive {
                user.isActive = isActive
                changed.append("is_active")
            }
            if let passwordHash {
                user.passwordHash = passwordHash
                changed.append("password")
            }
            if !Set(changed).isDisjoint(with: ["role", "is_active", "password"]) { user.tokenVersion += 1 }
            return changed
        }
    }

    /// The last active admin can neither be disabled nor lose the role, or nobody could
    /// administer the installation. Nil when the change may go ahead, else the field the refusal
    /// names. `activeAdmins` counts the user itself while it is still an active admin.
    static func lastAdminRefusal(wasActiveAdmin: Bool, isActiveAdmin: Bool, activeAdmins: Int, disabling: Bool)
        -> String?
    {
        guard wasActiveAdmin, !isActiveAdmin, activeAdmins <= 1 else { return nil }
        return disabling ? "is_active" : "role"
    }

    /// Applies a change in one transaction: the last-admin rule against the rows as they are, and
    /// every refresh token revoked when the user is disabled or gets a new password, so no session
    /// outlives the change.
    static func update(_ id: UUID, change: Change, on db: any Database) async throws -> (User, [String]) {
        try await db.transaction { tx -> (User, [String]) in
            guard let user = try await User.find(id, on: tx) else { throw APIError.notFound("no user \(id)") }
            let wasActiveAdmin = user.isActive && user.role == Role.admin.rawValue
            let changed = change.apply(to: user)
            let isActiveAdmin = user.isActive && user.role == Role.admin.rawValue
            if wasActiveAdmin, !isActiveAdmin {
                let admins = try await User.query(on: tx).filter(\.$role == Role.admin.rawValue)
                    .filter(\.$isActive == true).count()
                if let field = lastAdminRefusal(
                    wasActiveAdmin: wasActiveAdmin, isActiveAdmin: isActiveAdmin, activeAdmins: admins,
                    disabling: change.isActive == false)
                {
                    throw APIError(
                        .conflict, "CONFLICT", "the last active admin cannot be disabled or demoted",
                        details: ["field": field])
                }
            }
            try await user.save(on: tx)
            if !user.isActive || change.passwordHash != nil {
                try await RefreshToken.query(on: tx).filter(\.$userID == id).filter(\.$revokedAt == nil)
                    .set(\.$revokedAt, to: Date()).update()
            }
            return (user, changed)
        }
    }
}

extension Role {
    /// The role of a request or command value, or 400 naming the roles there are.
    static func named(_ raw: String) throws -> Role {
        guard let role = Role(rawValue: raw) else {
            throw APIError.validation(
                "role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))", field: "role")
        }
        return role
    }
}

/// Per-collection API keys, as signed-in users issue them.
enum APIKeys {
    /// The scopes a key asks for, checked: each one a key may hold, and held by whoever issues it
    /// (nobody hands out more than they hold).
    static func scopes(_ names: [String], issuer: Principal) throws -> Set<Permission> {
        var scopes = Set<Permission>()
        for name in names {
            guard let scope = Permission(rawValue: name), Permission.apiKeyScopes.contains(scope) else {
                throw APIError.validation(
                    "scope \(name.prefix(40)) is not one of "
                        + Permission.apiKeyScopes.map(\.rawValue).sorted().joined(separator: ", "), field: "scopes")
            }
            guard issuer.has(scope) else {
                throw APIError(.forbidden, "FORBIDDEN", "you do not hold the \(scope.rawValue) permission")
            }
            scopes.insert(scope)
        }
        guard !scopes.isEmpty else { throw APIError.validation("scopes is empty", field: "scopes") }
        return scopes
    }

    /// A new key for a collection; the secret is returned once and only its SHA-256 is stored.
    static func issue(
        collection: String, name: String, scopes names: [String], expiresAt text: String?, by issuer: Principal,
        on db: any Database, now: Date = Date()
    ) async throws -> (APIKey, secret: String) {
        guard (1...100).contains(name.count) else {
            throw APIError.validation("name must have 1 to 100 characters", field: "name")
        }
        try TextPolicy.refuseControlCharacters(name, field: "name")
        let scopes = try scopes(names, issuer: issuer)
        var expiresAt: Date?
        if let text {
            guard let date = try? Date(text, strategy: .iso8601), date > now else {
                throw APIError.validation(
                    "expires_at must be a future ISO 8601 time, e.g. 2027-01-31T12:00:00Z", field: "expires_at")
            }
            expiresAt = date
        }
        let secret = "fsk_" + Secrets.random()
        let key = APIKey()
        key.collectionID = collection
        key.name = name
        key.scopes = scopes.map(\.rawValue).sorted().joined(separator: " ")
        key.prefix = String(secret.prefix(12))
        key.keyHash = Secrets.sha256Hex(secret)
        key.createdBy = issuer.id
        key.expiresAt = expiresAt
        try await key.create(on: db)
        return (key, secret)
    }
}
