import Fluent
import Foundation
import NIOSSL
import Synchronization
import Vapor

/// Everything the security layer shares across requests, kept in the application's storage.
public final class SecurityServices: Sendable {
    public let config: SecurityConfig
    public let profile: Profile
    public let keyRing: KeyRing
    public let redis: RedisGate?
    public let limiter: RateLimiter
    public let cache: ResultCache
    public let loginThrottle: LoginThrottle
    public let hashingGate: HashingGate
    /// What a login with an unknown email is verified against: a bcrypt hash of a random secret
    /// at the configured cost, made once at start, so unknown and known emails take as long.
    let decoyHash: String
    /// The periodic audit purge, cancelled at shutdown.
    private let purgeTask = Mutex<Task<Void, Never>?>(nil)

    init(config: SecurityConfig, profile: Profile, keyRing: KeyRing, redis: RedisGate?, decoyHash: String) {
        self.config = config
        self.decoyHash = decoyHash
        self.profile = profile
        self.keyRing = keyRing
        self.redis = redis
        self.limiter = RateLimiter(redis: redis)
        self.cache = ResultCache(ttl: config.cacheTTL, maxEntries: config.cacheMaxEntries, redis: redis)
        self.loginThrottle = LoginThrottle(
            account: .init(
                freeFailures: config.loginFailuresPerAccount,
                baseDelay: Double(config.loginFailureDelayMilliseconds) / 1000),
            address: .init(
                freeFailures: config.loginFailuresPerAddress,
                baseDelay: Double(config.loginFailureDelayMilliseconds) / 1000))
        self.hashingGate = HashingGate(limit: config.passwordHashConcurrency)
    }

    struct Key: StorageKey {
        typealias Value = SecurityServices
    }

    /// Sets up keys, Redis, migrations, the first admin, the audit purge, transport and the
    /// middleware that authenticates and rate-limits; call before registering routes.
    static func configure(_ app: Application, config: AppConfig) async throws -> SecurityServices {
        let security = config.security
        let keyRing = try await KeyRing.load(
            secret: config.jwtSecret, keyDirectory: security.jwtKeyDirectory,
            maxLifetime: TimeInterval(security.accessTokenTTL))
        var gate: RedisGate?
        if let target = security.redis {
            let metrics = RedisMetrics()
            let client = try target.makeClient(
                caFile: security.redisTLSCAFile, group: app.eventLoopGroup, metrics: metrics, logger: app.logger)
            gate = RedisGate(client: client, metrics: metrics)
            if await gate?.probe() != nil {
                app.logger.warning("Redis is not reachable at start; using local rate limits and cache until it is")
            }
        }
        let decoyHash = try await app.threadPool.runIfActive { [cost = security.bcryptCost] in
            try Bcrypt.hash(Secrets.random(), cost: cost)
        }
        let services = SecurityServices(
            config: security, profile: config.profile, keyRing: keyRing, redis: gate, decoyHash: decoyHash)
        app.storage[Key.self] = services
        app.lifecycle.use(Shutdown(services: services))

        // The tables come with the other migrations (SchemaMigrations.all), applied before this.
        try await services.bootstrapAdmin(app)
        let purged = try await AuditLog.purge(on: app.db, retentionDays: security.auditRetentionDays)
        if purged > 0 { app.logger.notice("purged \(purged) audit rows past retention") }
        try await IdempotentRequests.purge(on: app.db)
        services.startAuditPurge(app)

        try configureTransport(app, security: security, profile: config.profile)
        if !security.corsOrigins.isEmpty {
            let origins: CORSMiddleware.AllowOriginSetting =
                security.corsOrigins == ["*"] ? .all : .any(security.corsOrigins)
            app.middleware.use(
                CORSMiddleware(
                    configuration: .init(
                        allowedOrigin: origins, allowedMethods: [.GET, .POST, .PUT, .PATCH, .DELETE, .OPTIONS],
                        allowedHeaders: [.accept, .authorization, .contentType, .origin, "x-api-key", "x-request-id"],
                        exposedHeaders: [
                            "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                            "Retry-After",
                        ])), at: .beginning)
        }
        // Outermost, so error responses carry the headers too.
        app.middleware.use(
            SecurityHeadersMiddleware(
                hsts: config.profile == .production, nativeTLS: security.tlsCertificatePath != nil,
                varyOrigin: !security.corsOrigins.isEmpty), at: .beginning)
        app.middleware.use(
            RateLimitMiddleware(limiter: services.limiter, scope: .ip, limit: security.rateLimitIPPerMinute))
        app.middleware.use(
            AuthenticationMiddleware(keyRing: keyRing, metricsTokenHash: security.metricsToken.map(Secrets.sha256Hex)))
        app.middleware.use(
            RateLimitMiddleware(limiter: services.limiter, scope: .principal, limit: security.rateLimitPerMinute))
        return services
    }

    /// The first admin, from FACESOCIAL_ADMIN_EMAIL / FACESOCIAL_ADMIN_PASSWORD, only while no user
    /// exists. There is no built-in password.
    func bootstrapAdmin(_ app: Application) async throws {
        guard try await User.query(on: app.db).count() == 0 else { return }
        guard let email = config.adminEmail, let password = config.adminPassword else {
            app.logger.warning(
                "no user exists: set FACESOCIAL_ADMIN_EMAIL and FACESOCIAL_ADMIN_PASSWORD, or run `facesocial users create`"
            )
            return
        }
        let hash = try await app.threadPool.runIfActive { [cost = config.bcryptCost] in
            try Bcrypt.hash(password, cost: cost)
        }
        try await User(email: email, passwordHash: hash, role: .admin, collections: []).create(on: app.db)
        await AuditLog.record(
            on: app.db, by: .system("system", logger: app.logger), action: "user.bootstrap_admin",
            resourceType: "user", resourceID: email)
        app.logger.notice("created the first admin from the environment", metadata: ["email": .string(email)])
    }

    /// HTTP response compression for JSON, and native TLS when a certificate is configured.
    static func configureTransport(_ app: Application, security: SecurityConfig, profile: Profile) throws {
        app.http.server.configuration.responseCompression = .disabled(allowedTypes: [.json])
        if let certificatePath = security.tlsCertificatePath, let keyPath = security.tlsKeyPath {
            let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map {
                NIOSSLCertificateSource.certificate($0)
            }
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            app.http.server.configuration.tlsConfiguration = tls
        }
    }

    /// Purges audit rows past retention (and idempotency answers past their 24 hours) every
    /// FACESOCIAL_AUDIT_PURGE_INTERVAL_SECONDS while the server runs, so a long-lived instance
    /// keeps to the retention setting without restarts. A failed purge is logged and tried again
    /// at the next interval.
    func startAuditPurge(_ app: Application) {
        let interval = Duration.seconds(config.auditPurgeIntervalSeconds)
        let days = config.auditRetentionDays
        let db = app.db
        let logger = app.logger
        let task = Task {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    let purged = try await AuditLog.purge(on: db, retentionDays: days)
                    if purged > 0 { logger.notice("purged \(purged) audit rows past retention") }
                    try await IdempotentRequests.purge(on: db)
                } catch {
                    logger.warning("audit purge failed; retrying at the next interval: \(error)")
                }
            }
        }
        purgeTask.withLock { $0 = task }
    }

    /// Stops the purge and closes the Redis connections.
    struct Shutdown: LifecycleHandler {
        let services: SecurityServices
        func shutdownAsync(_ application: Application) async {
            services.purgeTask.withLock { $0?.cancel() }
            await services.redis?.client.shutdown()
        }
    }
}

extension Application {
    public var security: SecurityServices? { storage[SecurityServices.Key.self] }
}

extension Request {
    var security: SecurityServices {
        guard let services = application.security else { fatalError("SecurityServices.configure was not called") }
        return services
    }
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer; HSTS in production
/// on answers that travel over HTTPS (native TLS, or `X-Forwarded-Proto: https` from a trusted
/// proxy; RFC 6797 has browsers ignore it over plain HTTP); `Vary: Origin` when CORS is on, so a
/// cache never hands one origin's CORS answer to another.
struct SecurityHeadersMiddleware: AsyncMiddleware {
    let hsts: Bool
    var nativeTLS = false
    var varyOrigin = false

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response = try await next.respond(to: request)
        response.headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        response.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        response.headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        response.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        if varyOrigin, !response.headers[.vary].contains(where: { $0.lowercased().contains("origin") }) {
            response.headers.add(name: .vary, value: "Origin")
        }
        if hsts, nativeTLS || request.forwardedOverHTTPS {
            response.headers.replaceOrAdd(
                name: "Strict-Transport-Security", value: "max-age=31536000; includeSubDomains")
        }
        return response
    }
}

/// Reads `Authorization: Bearer <jwt>` or `x-api-key`; sets the principal, or anonymous when the
/// request carries neither. Credentials that are sent but do not verify are refused with 401.
struct AuthenticationMiddleware: AsyncMiddleware {
    let keyRing: KeyRing
    /// SHA-256 of `FACESOCIAL_METRICS_TOKEN`: digests are compared, as for API keys, so the
    /// comparison's timing tells nothing about the token.
    var metricsTokenHash: String?

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let key = request.headers.first(name: "x-api-key") {
            request.storage[PrincipalKey.self] = try await apiKeyPrincipal(key, request)
        } else if let authorization = request.headers.first(name: .authorization) {
            request.storage[PrincipalKey.self] = try await tokenPrincipal(authorization, request)
        }
        return try await next.respond(to: request)
    }

    func apiKeyPrincipal(_ key: String, _ request: Request) async throws -> Principal {
        let hash = Secrets.sha256Hex(key)
        guard key.count <= 200,
            let row = try await APIKey.query(on: request.db).filter(\.$keyHash == hash).filter(\.$revokedAt == nil)
                .first()
        else {
            await request.audit(
                action: "auth.api_key", resourceType: "api_key", resourceID: String(key.prefix(12)), outcome: .denied,
                details: ["reason": "unknown or revoked key"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "the API key is unknown or revoked")
        }
        var creator: User?
        if let creatorID = UUID(uuidString: row.createdBy) { creator = try await User.find(creatorID, on: request.db) }
        guard let principal = row.principal(creator: creator) else {
            await request.audit(
                action: "auth.api_key", resourceType: "api_key", resourceID: row.id?.uuidString.lowercased() ?? "",
                outcome: .denied, details: ["reason": "expired, or its creator is disabled or lost the collection"])
            throw APIError(
                .unauthorized, "UNAUTHORIZED",
                "the API key has expired, or its creator no longer reaches the collection")
        }
        return principal
    }

    func tokenPrincipal(_ authorization: String, _ request: Request) async throws -> Principal {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(.unauthorized, "UNAUTHORIZED", "the Authorization header must be `Bearer <token>`")
        }
        if let metricsTokenHash, Secrets.sha256Hex(String(parts[1])) == metricsTokenHash {
            return .metricsScraper
        }
        let claims: AccessClaims
        do {
            claims = try await keyRing.verify(String(parts[1]))
        } catch {
            let reason = (error as? TokenError)?.description ?? "the token does not verify"
            await request.audit(
                action: "auth.token", resourceType: "token", resourceID: "bearer", outcome: .denied,
                details: ["reason": reason])
            throw APIError(.unauthorized, "UNAUTHORIZED", reason)
        }
        // The user is read on every request, so a disabled account or a changed role takes effect
        // without waiting for its tokens to expire, and a token issued before the user's last
        // logout, password, role or active change (an older `ver`) is refused.
        guard let id = UUID(uuidString: claims.sub.value), let user = try await User.find(id, on: request.db),
            user.isActive
        else {
            await request.audit(
                action: "auth.token", resourceType: "user", resourceID: claims.sub.value, outcome: .denied,
                details: ["reason": "unknown or disabled user"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "the token's user is unknown or disabled")
        }
        guard (claims.ver ?? 0) == user.tokenVersion else {
            await request.audit(
                action: "auth.token", resourceType: "user", resourceID: claims.sub.value, outcome: .denied,
                details: ["reason": "token ended by logout or an account change"])
            throw APIError(.unauthorized, "UNAUTHORIZED", "the token was ended by a logout or an account change")
        }
        return user.principal
    }
}
