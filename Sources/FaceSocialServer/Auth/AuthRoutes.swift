import Fluent
import Foundation
import JWTKit
import SQLKit
import Vapor

struct TokenResponse: Content {
    let accessToken: String
    let tokenType: String
    let expiresIn: Int
    let refreshToken: String
    let refreshExpiresIn: Int
}

struct PrincipalDTO: Content {
    let kind: String
    let id: String
    let role: String?
    let email: String?
    let permissions: [String]
    /// `["*"]` for every collection.
    let collections: [String]

    init(_ p: Principal) {
        kind = p.kind.rawValue
        id = p.id
        role = p.role?.rawValue
        email = p.email
        permissions = p.permissions.map(\.rawValue).sorted()
        switch p.collections {
        case .all: collections = ["*"]
        case .only(let ids): collections = ids.sorted()
        }
    }
}

/// Sign-in with rotating refresh tokens, sign-out, the caller's identity and the JWKS.
struct AuthRoutes: RouteCollection {

    func boot(routes: any RoutesBuilder) throws {
        let auth = routes.grouped("v1", "auth")
        auth.post("login", use: login)
        auth.post("refresh", use: refresh)
        auth.post("logout", use: logout)
        auth.get("me", use: me)
        routes.get(".well-known", "jwks.json", use: jwks)
    }

    struct LoginBody: Content {
        let email: String
        let password: String
    }

    struct RefreshBody: Content {
        let refreshToken: String
    }

    @Sendable
    func login(_ req: Request) async throws -> Envelope<TokenResponse> {
        let body = try req.content.decode(LoginBody.self)
        guard !body.email.isEmpty, body.email.count <= 254, !body.password.isEmpty, body.password.count <= 1024 else {
            throw APIError.validation("email and password are required", field: "email")
        }
        let email = EmailAddress.canonical(body.email)
        let security = req.security
        let address = req.clientAddress ?? "unknown"
        // Too many failures of this email or from this address: wait, before any hashing.
        if let wait = security.loginThrottle.retryAfter(email: email, address: address) {
            await req.audit(
                action: "auth.login", resourceType: "user", resourceID: email, outcome: .denied,
                details: ["reason": "too many failed sign-ins"])
            throw APIError.tooManyAttempts("too many failed sign-ins; retry in \(wait) s", retryAfter: wait)
        }
        let user = try await User.query(on: req.db).filter(\.$email == email).first()
        // An unknown email is checked against the decoy, hashed at the configured cost, so both
        // paths cost the same bcrypt verification and the time tells nothing.
        let hash = user?.passwordHash ?? security.decoyHash
        let threadPool = req.application.threadPool
        guard
            let matches = try await security.hashingGate.run({
                try await threadPool.runIfActive { try Bcrypt.verify(body.password, created: hash) }
            })
        else {
            throw APIError.tooManyAttempts("too many sign-ins at once; retry in 1 s", retryAfter: 1)
        }
        guard let user, matches, user.isActive else {
            security.loginThrottle.failed(email: email, address: address)
            await req.audit(
                action: "auth.login", resourceType: "user", resourceID: email, outcome: .denied,
                details: ["reason": "bad credentials"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "wrong email or password")
        }
        security.loginThrottle.succeeded(email: email)
        let tokens = try await issue(req, user: user, family: UUID())
        await req.audit(
            action: "auth.login", resourceType: "user", resourceID: try user.requireID().uuidString.lowercased(),
            actor: user.principal)
        return req.envelope(tokens)
    }

    /// A new access token, and a new refresh token in the same family.
    func issue(_ req: Request, user: User, family: UUID) async throws -> TokenResponse {
        let security = req.security
        let now = Date()
        let claims = AccessClaims(
            sub: SubjectClaim(value: try user.requireID().uuidString.lowercased()),
            exp: ExpirationClaim(value: now.addingTimeInterval(Double(security.config.accessTokenTTL))),
            iat: IssuedAtClaim(value: now), jti: IDClaim(value: UUID().uuidString),
            iss: IssuerClaim(value: AccessClaims.issuer),
            role: user.role, typ: "access", ver: user.tokenVersion, aud: AudienceClaim(value: AccessClaims.audience))
        let access = try await security.keyRing.sign(claims)
        let refresh = Secrets.random()
        try await RefreshToken(
            userID: try user.requireID(), familyID: family, tokenHash: Secrets.sha256Hex(refresh),
            expiresAt: now.addingTimeInterval(Double(security.config.refreshTokenTTL))
        ).create(on: req.db)
        return TokenResponse(
            accessToken: access, tokenType: "Bearer", expiresIn: security.config.accessTokenTTL,
            refreshToken: refresh, refreshExpiresIn: security.config.refreshTokenTTL)
    }

    @Sendable
    func refresh(_ req: Request) async throws -> Envelope<TokenResponse> {
        let body = try req.content.decode(RefreshBody.self)
        let hash = Secrets.sha256Hex(body.refreshToken)
        guard let token = try await RefreshToken.query(on: req.db).filter(\.$tokenHash == hash).first() else {
            await req.audit(
                action: "auth.refresh", resourceType: "refresh_token", resourceID: "unknown", outcome: .denied,
                details: ["reason": "unknown token"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "the refresh token is unknown")
        }
        let family = token.familyID.uuidString.lowercased()
        if token.usedAt != nil || token.revokedAt != nil {
            // A used token coming back means it was copied: end every session of this sign-in.
            let revoked = try await revokeFamily(token.familyID, on: req.db)
            try await User.endAccessTokens(of: token.userID, on: req.db)
            await req.audit(
                action: "auth.refresh_reuse", resourceType: "token_family", resourceID: family, outcome: .denied,
                details: ["user": token.userID.uuidString.lowercased(), "revoked": String(revoked)])
            throw APIError(
                .unauthorized, "UNAUTHORIZED", "the refresh token was already used; its sessions are revoked")
        }
        guard token.expiresAt > Date(), let user = try await User.find(token.userID, on: req.db), user.isActive else {
            await req.audit(
                action: "auth.refresh", resourceType: "token_family", resourceID: family, outcome: .denied,
                details: ["reason": "expired token or disabled user"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "the refresh token has expired")
        }
        // Claimed with one conditional UPDATE … WHERE used_at IS NULL RETURNING id, so of two
        // concurrent uses exactly one gets the row; the other is a reuse.
        let claimed = try await SQLiteBusy.retrying { try await claim(token, on: req.db) }
        guard claimed else {
            let revoked = try await SQLiteBusy.retrying { try await revokeFamily(token.familyID, on: req.db) }
            try await SQLiteBusy.retrying { try await User.endAccessTokens(of: token.userID, on: req.db) }
            await req.audit(
                action: "auth.refresh_reuse", resourceType: "token_family", resourceID: family, outcome: .denied,
                details: [
                    "user": token.userID.uuidString.lowercased(), "revoked": String(revoked),
                    "reason": "concurrent use",
                ])
            throw APIError(
                .unauthorized, "UNAUTHORIZED", "the refresh token was already used; its sessions are revoked")
        }
        let tokens = try await SQLiteBusy.retrying { try await issue(req, user: user, family: token.familyID) }
        await req.audit(
            action: "auth.refresh", resourceType: "token_family", resourceID: family, actor: user.principal)
        return req.envelope(tokens)
    }

    /// Marks the token used if no one has: true for the one caller that did.
    func claim(_ token: RefreshToken, on db: any Database) async throws -> Bool {
        guard let sql = db as? any SQLDatabase else { return false }
        let rows = try await sql.update(RefreshToken.schema)
            .set(SQLIdentifier("used_at"), to: SQLBind(Date()))
            .where(SQLIdentifier("id"), .equal, SQLBind(try token.requireID()))
            .where(SQLIdentifier("used_at"), .is, SQLLiteral.null)
            .returning(SQLIdentifier("id"))
            .all()
        return rows.count == 1
    }

    @discardableResult
    func revokeFamily(_ family: UUID, on db: any Database) async throws -> Int {
        let live = try await RefreshToken.query(on: db).filter(\.$familyID == family).filter(\.$revokedAt == nil).all()
        let now = Date()
        for token in live {
            token.revokedAt = now
            try await token.save(on: db)
        }
        return live.count
    }

    @Sendable
    func logout(_ req: Request) async throws -> Envelope<[String: Int]> {
        let body = try req.content.decode(RefreshBody.self)
        let hash = Secrets.sha256Hex(body.refreshToken)
        guard let token = try await RefreshToken.query(on: req.db).filter(\.$tokenHash == hash).first() else {
            await req.audit(
                action: "auth.logout", resourceType: "refresh_token", resourceID: "unknown", outcome: .denied)
            throw APIError(.unauthorized, "UNAUTHORIZED", "the refresh token is unknown")
        }
        let revoked = try await revokeFamily(token.familyID, on: req.db)
        // The access tokens end too: those of the user's other sign-ins refresh once to continue.
        try await User.endAccessTokens(of: token.userID, on: req.db)
        await req.audit(
            action: "auth.logout", resourceType: "token_family", resourceID: token.familyID.uuidString.lowercased(),
            details: ["user": token.userID.uuidString.lowercased()])
        return req.envelope(["revoked": revoked])
    }

    @Sendable
    func me(_ req: Request) async throws -> Envelope<PrincipalDTO> {
        let principal = req.principal
        guard principal.isAuthenticated else {
            throw APIError(.unauthorized, "UNAUTHORIZED", "send a bearer token or an x-api-key")
        }
        return req.envelope(PrincipalDTO(principal))
    }

    @Sendable
    func jwks(_ req: Request) async throws -> Response {
        let body = try JSONSerialization.data(withJSONObject: req.security.keyRing.jwks, options: [.sortedKeys])
        return Response(
            status: .ok, headers: ["Content-Type": "application/jwk-set+json", "Cache-Control": "max-age=300"],
            body: .init(data: body))
    }
}
