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
        let role = try body.role.map(Role.named)
        for collection in body.collections ?? [] { try Collections.validate(collection) }
        var passwordHash: String?
        if let password = body.password {
            guard let user = try await User.find(id, on: req.db) else { throw APIError.notFound("no user \(id)") }
            try PasswordPolicy.check(password, email: user.email)
            let cost = req.security.config.bcryptCost
            passwordHash = try await req.application.threadPool.runIfActive { try Bcrypt.hash(password, cost: cost) }
        }
        let (user, changed) = try await Users.update(
            id,
            change: Users.Change(
                role: role, collections: body.collections, isActive: body.isActive, passwordHash: passwordHash),
            on: req.db)
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
        let (key, secret) = try await APIKeys.issue(
            collection: collection, name: body.name, scopes: body.scopes, expiresAt: body.expiresAt, by: principal,
            on: req.db)
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
