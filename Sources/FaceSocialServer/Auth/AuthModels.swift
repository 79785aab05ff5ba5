import Fluent
import Foundation
import SQLKit

/// An account that signs in with an email and a bcrypt password hash.
public final class User: Model, @unchecked Sendable {
    public static let schema = "users"
    @ID(key: .id) public var id: UUID?
    @Field(key: "email") public var email: String
    @Field(key: "password_hash") public var passwordHash: String
    @Field(key: "role") public var role: String
    /// Collection ids this user may reach (admins and operators reach all): a JSON array as text.
    @Field(key: "collections") public var collectionsJSON: String
    @Field(key: "is_active") public var isActive: Bool
    /// Stamped into every access token as `ver`; a token whose `ver` differs is refused. Raised by
    /// logout, a password, role or active change and a reused refresh token, so every access
    /// token issued before ends on its next request.
    @Field(key: "token_version") public var tokenVersion: Int
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
    public init(id: UUID? = nil, email: String, passwordHash: String, role: Role, collections: [String]) {
        self.id = id
        self.email = email
        self.passwordHash = passwordHash
        self.role = role.rawValue
        self.collectionsJSON = Self.encode(collections)
        self.isActive = true
        self.tokenVersion = 0
    }

    /// Ends every access token of the user issued so far: one atomic increment of its version.
    static func endAccessTokens(of id: UUID, on db: any Database) async throws {
        guard let sql = db as? any SQLDatabase else {
            guard let user = try await User.find(id, on: db) else { return }
            user.tokenVersion += 1
            try await user.save(on: db)
            return
        }
        try await sql.update(User.schema).set(SQLIdentifier("token_version"), to: SQLRaw("token_version + 1"))
            .where(SQLIdentifier("id"), .equal, SQLBind(id)).run()
    }

    public var collections: [String] {
        get { (try? JSONDecoder().decode([String].self, from: Data(collectionsJSON.utf8))) ?? [] }
        set { collectionsJSON = Self.encode(newValue) }
    }

    static func encode(_ ids: [String]) -> String {
        let unique = Array(Set(ids.map { $0.lowercased() })).sorted()
        return String(decoding: (try? JSONEncoder().encode(unique)) ?? Data("[]".utf8), as: UTF8.self)
    }

    var principal: Principal {
        let role = Role(rawValue: self.role) ?? .user
        return Principal(
            kind: .user, id: id?.uuidString.lowercased() ?? "", role: role, permissions: role.permissions,
            collections: role.seesAllCollections ? .all : .only(Set(collections)), email: email)
    }
}

/// One refresh token, stored as its SHA-256. Tokens of one sign-in share a family: using a token
/// marks it used and issues the next; a used token coming back revokes the whole family.
public final class RefreshToken: Model, @unchecked Sendable {
    public static let schema = "refresh_tokens"
    @ID(key: .id) public var id: UUID?
    @Field(key: "user_id") public var userID: UUID
    @Field(key: "family_id") public var familyID: UUID
    @Field(key: "token_hash") public var tokenHash: String
    @Field(key: "expires_at") public var expiresAt: Date
    @OptionalField(key: "used_at") public var usedAt: Date?
    @OptionalField(key: "revoked_at") public var revokedAt: Date?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}
    init(userID: UUID, familyID: UUID, tokenHash: String, expiresAt: Date) {
        self.userID = userID
        self.familyID = familyID
        self.tokenHash = tokenHash
        self.expiresAt = expiresAt
    }
}

/// A key bound to one collection with a set of scopes. Only its SHA-256 is kept: the key is shown
/// once. (A key has 256 random bits, so a fast hash is enough; bcrypt is for low-entropy passwords.)
public final class APIKey: Model, @unchecked Sendable {
    public static let schema = "api_keys"
    @ID(key: .id) public var id: UUID?
    @Field(key: "collection_id") public var collectionID: String
    @Field(key: "name") public var name: String
    @Field(key: "scopes") public var scopes: String
    @Field(key: "prefix") public var prefix: String
    @Field(key: "key_hash") public var keyHash: String
    @Field(key: "created_by") public var createdBy: String
    @OptionalField(key: "revoked_at") public var revokedAt: Date?
    @OptionalField(key: "last_used_at") public var lastUsedAt: Date?
    /// After this the key is refused; nil for a key without an end.
    @OptionalField(key: "expires_at") public var expiresAt: Date?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    public init() {}

    var scopeSet: Set<Permission> {
        Set(scopes.split(separator: " ").compactMap { Permission(rawValue: String($0)) })
    }

    /// A key acts for the user who created it, never beyond that user's access now: it answers
    /// only while unexpired and while its creator is active and still reaches the collection, and
    /// with its scopes cut down to what the creator holds today. Nil when it must be refused.
    func principal(creator: User?, now: Date = Date()) -> Principal? {
        if let expiresAt, expiresAt <= now { return nil }
        guard let creator, creator.isActive else { return nil }
        let owner = creator.principal
        guard owner.canAccess(collection: collectionID) else { return nil }
        return Principal(
            kind: .apiKey, id: id?.uuidString.lowercased() ?? "", role: nil,
            permissions: scopeSet.intersection(Permission.apiKeyScopes).intersection(owner.permissions),
            collections: .only([collectionID.lowercased()]), email: nil)
    }
}
