import Fluent
import Foundation
import Vapor

struct UserDTO: Content {
    let id: String
    let email: String
    let role: String
    let collections: [String]
    let isActive: Bool
    let createdAt: String?

    init(_ u: User) {
        id = u.id?.uuidString.lowercased() ?? ""
        email = u.email
        role = u.role
        collections = u.collections
        isActive = u.isActive
        createdAt = iso8601(u.createdAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, email, role, collections
        case isActive = "is_active"
        case createdAt = "created_at"
    }
}

struct APIKeyDTO: Content {
    let id: String
    let collectionID: String
    let name: String
    let scopes: [String]
    let prefix: String
    let createdAt: String?
    let revokedAt: String?
    let expiresAt: String?
    /// Present only in the response that creates the key.
    let key: String?

    init(_ k: APIKey, key: String? = nil) {
        id = k.id?.uuidString.lowercased() ?? ""
        collectionID = k.collectionID
        name = k.name
        scopes = k.scopeSet.map(\.rawValue).sorted()
        prefix = k.prefix
        createdAt = iso8601(k.createdAt)
        revokedAt = iso8601(k.revokedAt)
        expiresAt = iso8601(k.expiresAt)
        self.key = key
    }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, prefix, key
        case collectionID = "collection_id"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
        case expiresAt = "expires_at"
    }
}

enum Users {
    /// Validates and creates a user; shared by `POST /v1/users` and `facesocial users create`.
    static func create(
        email: String, password: String, role: String, collections: [String], cost: Int, on db: any Database,
        threadPool: NIOThreadPool
    ) async throws -> User {
        let email = try EmailAddress.validated(email)
        try PasswordPolicy.check(password, email: email)
        guard let role = Role(rawValue: role) else {
            throw APIError.validation(
                "role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))", field: "role")
        }
        for id in collections { try Collections.validate(id) }
        guard try await User.query(on: db).filter(\.$email == email).count() == 0 else {
            throw APIError(.conflict, "CONFLICT", "a user with this email exists", details: ["field": "email"])
        }
        let hash = try await threadPool.runIfActive { try Bcrypt.hash(password, cost: cost) }
        let user = User(email: email, passwordHash: hash, role: role, collections: collections)
        try await user.create(on: db)
        return user
    }
}

enum Collections {
    /// Collection ids are UUIDs in the galleries layer; any short safe token is accepted here.
    static func validate(_ id: String) throws {
        guard (1...64).contains(id.count),
            id.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_".unicodeScalars.contains($0) }
            ),
            id.allSatisfy(\.isASCII)
        else { throw APIError.validation("collection id must be 1-64 letters, digits, - or _", field: "collection") }
    }
}

/// User administration and per-collection API keys.
struct AdminRoutes: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let v1 = routes.grouped("v1")
        v1.post("users", use: createUser)
        v1.get("users", use: listUsers)
        v1.patch("users", ":user_id", use: updateUser)
        let keys = v1.grouped("collections", ":collection", "api-keys")
        keys.post(use: createKey)
        keys.get(use: listKeys)
        keys.delete(":key_id", use: revokeKey)
    }

    struct CreateUserBody: Content {
        let email: String
        let password: String
        let role: String
        let collections: [String]?
    }

    @Sendable
    func createUser(_ req: Request) async throws -> Response {
        try await req.authorize(.adminUsers)
        let body = try req.content.decode(CreateUserBody.self)
        let user = try await Users.create(
            email: body.email, password: body.password, role: body.role, collections: body.collections ?? [],
            cost: req.security.config.bcryptCost, on: req.db, threadPool: req.application.threadPool)
        await req.audit(
            action: "user.create", resourceType: "user", resourceID: try user.requireID().uuidString.lowercased(),
            details: ["role": user.role])
        let response = Response(status: .created)
        try response.content.encode(req.envelope(UserDTO(user)))
        return response
    }

    struct UpdateUserBody: Content {
        let role: String?
        let collections: [String]?
        let isActive: Bool?
        let password: String?

        enum CodingKeys: String, CodingKey {
            case role, collections, password
            case isActive = "is_active"
        }
    }

    /// Changes a user's role, collections, password or active flag. Takes effect on the user's next
    /// request (tokens are checked against the row each time); disabling or a new password also
    /// revokes every refresh token, so no session outlives the change. The last active admin can
    /// neither be disabled nor lose the role.
    @Sendable
    func updateUser(_ req: Request) async throws -> Envelope<UserDTO> {
        try await req.authorize(.adminUsers)
        guard let id = req.parameters.get("user_id").flatMap(UUID.init(uuidString:)) else {
            throw APIError.validation("user_id must be a UUID", field: "user_id")
        }
        let body = try req.content.decode(UpdateUserBody.self)
        let role = try body.role.map { raw in
            guard let role = Role(rawValue: raw) else {
                throw APIError.validation(
                    "role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))", field: "role")
            }
            return role
        }
        for collection in body.collections ?? [] { try Collections.validate(collection) }
        if let password = body.password {
            guard let user = try await User.find(id, on: req.db) else { throw APIError.notFound("no user \(id)") }
            try PasswordPolicy.check(password, email: user.email)
        }
        let cost = req.security.config.bcryptCost
        var newHash: String?
        if let password = body.password {
            newHash = try await req.application.threadPool.runIfActive { try Bcrypt.hash(password, cost: cost) }
        }
        let hash = newHash
        let (user, changed) = try await req.db.transaction { db -> (User, [String]) in
            guard let user = try await User.find(id, on: db) else { throw APIError.notFound("no user \(id)") }
            let wasActiveAdmin = user.isActive && user.role == Role.admin.rawValue
            var changed: [String] = []
            if let role, role.rawValue != user.role {
                user.role = role.rawValue
                changed.append("role")
            }
            if let collections = body.collections {
                user.collections = collections
                changed.append("collections")
            }
            if let active = body.isActive, active != user.isActive {
                user.isActive = active
                changed.append("is_active")
            }
            if let hash {
                user.passwordHash = hash
                changed.append("password")
            }
            // Access tokens issued before a new role, password or disabling end on their next request.
            if !Set(changed).isDisjoint(with: ["role", "is_active", "password"]) { user.tokenVersion += 1 }
            if wasActiveAdmin, !(user.isActive && user.role == Role.admin.rawValue) {
                let admins = try await User.query(on: db).filter(\.$role == Role.admin.rawValue)
                    .filter(\.$isActive == true).count()
                guard admins > 1 else {
                    throw APIError(
                        .conflict, "CONFLICT", "the last active admin cannot be disabled or demoted",
                        details: ["field": body.isActive == false ? "is_active" : "role"])
                }
            }
            try await user.save(on: db)
            if !user.isActive || hash != nil {
                try await RefreshToken.query(on: db).filter(\.$userID == id).filter(\.$revokedAt == nil)
                    .set(\.$revokedAt, to: Date()).update()
            }
            return (user, changed)
        }
        await req.audit(
            action: "user.update", resourceType: "user", resourceID: id.uuidString.lowercased(),
            details: ["changed": changed.joined(separator: ","), "role": user.role, "active": String(user.isActive)])
        return req.envelope(UserDTO(user))
    }

    @Sendable
    func listUsers(_ req: Request) async throws -> Envelope<[UserDTO]> {
        try await req.authorize(.adminUsers)
        let users = try await User.query(on: req.db).sort(\.$email).all()
        await req.audit(action: "user.list", resourceType: "user", resourceID: "*")
        return req.envelope(users.map(UserDTO.init))
    }

    func collection(_ req: Request) throws -> String {
        let id = req.parameters.get("collection") ?? ""
        try Collections.validate(id)
        return id.lowercased()
    }

    struct CreateKeyBody: Content {
        let name: String
        let scopes: [String]
        /// ISO 8601; the key is refused from then on. Absent: no end.
        let expiresAt: String?

        enum CodingKeys: String, CodingKey {
            case name, scopes
            case expiresAt = "expires_at"
        }
    }

    @Sendable
    func createKey(_ req: Request) async throws -> Response {
        let collection = try collection(req)
        let principal = try await req.authorize(.collectionsWrite, collection: collection)
        // Keys do not mint keys: a leaked key must not be able to multiply itself.
        guard principal.kind == .user else {
            await req.audit(
                action: "api_key.create", resourceType: "collection", resourceID: collection, outcome: .denied)
            throw APIError(.forbidden, "FORBIDDEN", "API keys are managed by signed-in users")
        }
        let body = try req.content.decode(CreateKeyBody.self)
        guard (1...100).contains(body.name.count) else {
            throw APIError.validation("name must have 1 to 100 characters", field: "name")
        }
        try TextPolicy.refuseControlCharacters(body.name, field: "name")
        var scopes = Set<Permission>()
        for name in body.scopes {
            guard let scope = Permission(rawValue: name), Permission.apiKeyScopes.contains(scope) else {
                throw APIError.validation(
                    "scope \(name.prefix(40)) is not one of "
                        + Permission.apiKeyScopes.map(\.rawValue).sorted().joined(separator: ", "), field: "scopes")
            }
            // Nobody hands out more than they hold.
            guard principal.has(scope) else {
                throw APIError(.forbidden, "FORBIDDEN", "you do not hold the \(scope.rawValue) permission")
            }
            scopes.insert(scope)
        }
        guard !scopes.isEmpty else { throw APIError.validation("scopes is empty", field: "scopes") }
        var expiresAt: Date?
        if let text = body.expiresAt {
            guard let date = try? Date(text, strategy: .iso8601), date > Date() else {
                throw APIError.validation(
                    "expires_at must be a future ISO 8601 time, e.g. 2027-01-31T12:00:00Z", field: "expires_at")
            }
            expiresAt = date
        }
        let secret = "fsk_" + Secrets.random()
        let key = APIKey()
        key.collectionID = collection
        key.name = body.name
        key.scopes = scopes.map(\.rawValue).sorted().joined(separator: " ")
        key.prefix = String(secret.prefix(12))
        key.keyHash = Secrets.sha256Hex(secret)
        key.createdBy = principal.id
        key.expiresAt = expiresAt
        try await key.create(on: req.db)
        await req.audit(
            action: "api_key.create", resourceType: "api_key", resourceID: try key.requireID().uuidString.lowercased(),
            details: ["collection": collection, "scopes": key.scopes])
        let response = Response(status: .created)
        try response.content.encode(req.envelope(APIKeyDTO(key, key: secret)))
        return response
    }

    @Sendable
    func listKeys(_ req: Request) async throws -> Envelope<[APIKeyDTO]> {
        let collection = try collection(req)
        try await req.authorize(.collectionsRead, collection: collection)
        let keys = try await APIKey.query(on: req.db).filter(\.$collectionID == collection).sort(\.$createdAt).all()
        await req.audit(action: "api_key.list", resourceType: "collection", resourceID: collection)
        return req.envelope(keys.map { APIKeyDTO($0) })
    }

    @Sendable
    func revokeKey(_ req: Request) async throws -> Envelope<APIKeyDTO> {
        let collection = try collection(req)
        let principal = try await req.authorize(.collectionsWrite, collection: collection)
        guard principal.kind == .user else {
            throw APIError(.forbidden, "FORBIDDEN", "API keys are managed by signed-in users")
        }
        guard let id = req.parameters.get("key_id").flatMap(UUID.init(uuidString:)),
            let key = try await APIKey.find(id, on: req.db), key.collectionID == collection
        else { throw APIError.notFound("no such API key in this collection") }
        if key.revokedAt == nil {
            key.revokedAt = Date()
            try await key.save(on: req.db)
        }
        await req.audit(
            action: "api_key.revoke", resourceType: "api_key", resourceID: id.uuidString.lowercased(),
            details: ["collection": collection])
        return req.envelope(APIKeyDTO(key))
    }
}
