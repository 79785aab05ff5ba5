import Foundation

/// Settings for authentication, rate limits, the result cache, audit retention and transport.
public struct SecurityConfig: Sendable {
    public var jwtKeyDirectory: URL?
    public var accessTokenTTL: Int = 900
    public var refreshTokenTTL: Int = 30 * 86_400
    public var bcryptCost: Int = 12
    public var adminEmail: String?
    public var adminPassword: String?
    public var allowAnonymousAnalysis: Bool = true
    /// One Redis server (`REDIS_URL`) or a cluster (`REDIS_CLUSTER_NODES`), or neither.
    public var redis: RedisTarget?
    /// A private CA that signed the Redis servers' certificates (`rediss://`).
    public var redisTLSCAFile: String?
    public var rateLimitPerMinute: Int = 600
    public var rateLimitIPPerMinute: Int = 1200
    public var cacheTTL: Int = 300
    public var cacheMaxEntries: Int = 1000
    public var auditRetentionDays: Int = 365
    public var corsOrigins: [String] = []
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Peers whose X-Forwarded-For names the client (nginx in front of the instances).
    public var trustedProxies: [IPNetwork] = []
    /// How often audit rows past retention are purged while the server runs.
    public var auditPurgeIntervalSeconds: Int = 3600
    /// Failed sign-ins of one email before each further one waits (1 s, doubling, at most 15 min).
    public var loginFailuresPerAccount: Int = 5
    /// The same for one client address, whatever the emails.
    public var loginFailuresPerAddress: Int = 20
    /// The first wait past the free failures, in milliseconds; each further failure doubles it.
    public var loginFailureDelayMilliseconds: Int = 1000
    /// A connection waiting this long for a request (a silent socket, an idle keep-alive), or whose
    /// client stops reading an answer this long, is closed. An answer being computed is not timed
    /// (the queue and statement timeouts bound it). Above nginx's upstream keep-alive (30 s).
    public var idleTimeoutSeconds: Int = 45
    /// A request body must arrive whole within this long of its head, else 408.
    public var bodyTimeoutSeconds: Int = 60
    /// A request head must arrive whole within this long of its first byte, else the connection
    /// closes (a head trickled a byte at a time).
    public var headTimeoutSeconds: Int = 10
    /// Open connections the server holds at most; one more is answered 503 and closed.
    public var maxConnections: Int = 512
    /// Bearer secret of the metrics scraper (Prometheus): a principal with `system:monitor` only.
    public var metricsToken: String?
    /// Serve `/openapi.json` (development: yes; production: only when the operator says so).
    public var openAPIEnabled: Bool = true
    /// Password hashes computed at once (sign-in); more wait, and past four times this answer 429.
    public var passwordHashConcurrency: Int = SecurityConfig.defaultHashConcurrency

    static var defaultHashConcurrency: Int { max(1, ProcessInfo.processInfo.activeProcessorCount / 2) }

    /// The development-only admin password `make run` uses; production refuses it.
    static let developmentAdminPassword = "facesocial-dev-admin"

    static func redisTarget(url: String?, clusterNodes: String?) throws -> RedisTarget? {
        switch (url, clusterNodes) {
        case (nil, nil): return nil
        case (_?, _?):
            throw ConfigError.invalid(
                variable: "REDIS_URL", reason: "set REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both"
            )
        case (let url?, nil):
            do { return .server(try RedisEndpoint(url: url)) } catch {
                throw ConfigError.invalid(variable: "REDIS_URL", reason: "\(error)")
            }
        case (nil, let nodes?):
            do {
                let seeds = try RedisEndpoint.clusterSeeds(nodes)
                guard seeds.allSatisfy({ $0.database == 0 }) else {
                    throw RedisError.invalidURL("a cluster has only database 0")
                }
                return .cluster(seeds)
            } catch {
                throw ConfigError.invalid(
                    variable: "REDIS_CLUSTER_NODES",
                    reason: "\(error); expected [redis[s]://[user:password@]]host:port,host:port")
            }
        }
    }

    static func fromEnvironment(_ env: [String: String], profile: Profile) throws -> SecurityConfig {
        let read = EnvironmentReader(env)
        let value = read.value
        let integer = read.integer
        let flag = read.flag
        var config = SecurityConfig()
        config.jwtKeyDirectory = value("FACESOCIAL_JWT_KEY_DIR").map { URL(fileURLWithPath: $0) }
        config.accessTokenTTL = try integer("FACESOCIAL_ACCESS_TOKEN_TTL_SECONDS", 900, 30...86_400)
        config.refreshTokenTTL = try integer("FACESOCIAL_REFRESH_TOKEN_TTL_SECONDS", 30 * 86_400, 60...(365 * 86_400))
        config.bcryptCost = try integer("FACESOCIAL_BCRYPT_COST", 12, 4...31)
        config.adminEmail = value("FACESOCIAL_ADMIN_EMAIL")
        config.adminPassword = value("FACESOCIAL_ADMIN_PASSWORD")
        config.allowAnonymousAnalysis = try flag("FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS", profile == .development)
        config.redis = try redisTarget(url: value("REDIS_URL"), clusterNodes: value("REDIS_CLUSTER_NODES"))
        config.redisTLSCAFile = value("REDIS_TLS_CA_FILE")
        config.rateLimitPerMinute = try integer("FACESOCIAL_RATE_LIMIT_PER_MINUTE", 600, 1...1_000_000)
        config.rateLimitIPPerMinute = try integer("FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE", 1200, 1...1_000_000)
        config.cacheTTL = try integer("FACESOCIAL_CACHE_TTL_SECONDS", 300, 0...86_400)
        config.cacheMaxEntries = try integer("FACESOCIAL_CACHE_MAX_ENTRIES", 1000, 0...1_000_000)
        config.auditRetentionDays = try integer("FACESOCIAL_AUDIT_RETENTION_DAYS", 365, 1...36_500)
        config.corsOrigins = (value("FACESOCIAL_CORS_ORIGINS") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        config.auditPurgeIntervalSeconds = try integer("FACESOCIAL_AUDIT_PURGE_INTERVAL_SECONDS", 3600, 1...86_400)
        config.loginFailuresPerAccount = try integer("FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT", 5, 1...100_000)
        config.loginFailuresPerAddress = try integer("FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS", 20, 1...100_000)
        config.loginFailureDelayMilliseconds = try integer("FACESOCIAL_LOGIN_FAILURE_DELAY_MS", 1000, 1...900_000)
        config.passwordHashConcurrency = try integer(
            "FACESOCIAL_PASSWORD_HASH_CONCURRENCY", defaultHashConcurrency, 1...1024)
        config.trustedProxies = try (value("FACESOCIAL_TRUSTED_PROXIES") ?? "").split(separator: ",").map {
            let text = $0.trimmingCharacters(in: .whitespaces)
            guard let network = IPNetwork(text) else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_TRUSTED_PROXIES", reason: "\"\(text.prefix(60))\" is not an address or CIDR")
            }
            return network
        }
        config.tlsCertificatePath = value("FACESOCIAL_TLS_CERT_PATH")
        config.tlsKeyPath = value("FACESOCIAL_TLS_KEY_PATH")
        if (config.tlsCertificatePath == nil) != (config.tlsKeyPath == nil) {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_TLS_CERT_PATH",
                reason: "set both FACESOCIAL_TLS_CERT_PATH and FACESOCIAL_TLS_KEY_PATH")
        }
        if config.adminEmail != nil, config.adminPassword == nil {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_ADMIN_PASSWORD", reason: "FACESOCIAL_ADMIN_EMAIL is set without a password")
        }
        if let email = config.adminEmail {
            do { config.adminEmail = try EmailAddress.validated(email) } catch let error as APIError {
                throw ConfigError.invalid(variable: "FACESOCIAL_ADMIN_EMAIL", reason: error.message)
            }
        }
        if let password = config.adminPassword, let problem = PasswordPolicy.problem(password, email: config.adminEmail)
        {
            throw ConfigError.invalid(variable: "FACESOCIAL_ADMIN_PASSWORD", reason: problem)
        }
        config.idleTimeoutSeconds = try integer("FACESOCIAL_IDLE_TIMEOUT_SECONDS", config.idleTimeoutSeconds, 1...3600)
        config.bodyTimeoutSeconds = try integer("FACESOCIAL_BODY_TIMEOUT_SECONDS", config.bodyTimeoutSeconds, 1...3600)
        config.headTimeoutSeconds = try integer("FACESOCIAL_HEAD_TIMEOUT_SECONDS", config.headTimeoutSeconds, 1...3600)
        config.maxConnections = try integer("FACESOCIAL_MAX_CONNECTIONS", config.maxConnections, 1...1_000_000)
        config.metricsToken = value("FACESOCIAL_METRICS_TOKEN")
        config.openAPIEnabled = try flag("FACESOCIAL_OPENAPI", profile == .development)
        return config
    }

    /// What production refuses: anonymous analysis, the development admin password, open CORS.
    func validate(profile: Profile) throws {
        guard profile == .production else { return }
        if allowAnonymousAnalysis {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS", reason: "anonymous analysis is refused in production")
        }
        if adminPassword == Self.developmentAdminPassword {
            throw ConfigError.insecureDefault(variable: "FACESOCIAL_ADMIN_PASSWORD")
        }
        if bcryptCost < 10 {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_BCRYPT_COST", reason: "production needs a cost of at least 10 (got \(bcryptCost))"
            )
        }
        if let token = metricsToken, token.utf8.count < 32 {
            throw ConfigError.invalid(variable: "FACESOCIAL_METRICS_TOKEN", reason: "must be at least 32 characters")
        }
        if corsOrigins.contains("*") {
            throw ConfigError.invalid(variable: "FACESOCIAL_CORS_ORIGINS", reason: "\"*\" is refused in production")
        }
    }

    static let variables: [ConfigVariable] = [
        .init(
            name: "FACESOCIAL_JWT_KEY_DIR", defaultValue: "(none: HS256 with JWT_SECRET_KEY)",
            summary: "folder of ES256/RS256 private keys (<kid>.pem); the newest signs, all verify (`keys rotate`)"),
        .init(
            name: "FACESOCIAL_ACCESS_TOKEN_TTL_SECONDS", defaultValue: "900", summary: "lifetime of access tokens"),
        .init(
            name: "FACESOCIAL_REFRESH_TOKEN_TTL_SECONDS", defaultValue: "2592000",
            summary: "lifetime of refresh tokens (each use rotates it)"),
        .init(name: "FACESOCIAL_BCRYPT_COST", defaultValue: "12", summary: "bcrypt cost of password hashes"),
        .init(
            name: "FACESOCIAL_ADMIN_EMAIL", defaultValue: "(none)",
            summary: "email of the first admin, created on start when no user exists"),
        .init(
            name: "FACESOCIAL_ADMIN_PASSWORD", defaultValue: "(none)",
            summary:
                "password of that first admin (at least 12 characters; the `make run` value is refused in production)"),
        .init(
            name: "FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS", defaultValue: "true in development, false in production",
            summary: "lets anonymous callers use the stateless analysis routes; production refuses true"),
        .init(
            name: "FACESOCIAL_IDLE_TIMEOUT_SECONDS", defaultValue: "45",
            summary:
                "a connection waiting this long for a request, or whose client stops reading an answer this long, is closed"
        ),
        .init(
            name: "FACESOCIAL_BODY_TIMEOUT_SECONDS", defaultValue: "60",
            summary: "a request body must arrive whole within this long of its head, else 408 REQUEST_TIMEOUT"),
        .init(
            name: "FACESOCIAL_HEAD_TIMEOUT_SECONDS", defaultValue: "10",
            summary: "a request head must arrive whole within this long of its first byte, else the connection closes"),
        .init(
            name: "FACESOCIAL_MAX_CONNECTIONS", defaultValue: "512",
            summary: "open connections held at most; one more gets 503 TOO_MANY_CONNECTIONS and is closed"),
        .init(
            name: "FACESOCIAL_METRICS_TOKEN", defaultValue: "(none)",
            summary:
                "bearer secret (at least 32 characters in production) that lets a scraper read /metrics and /system status; "
                + "without it only operators and admins can where anonymous status is off"),
        .init(
            name: "FACESOCIAL_OPENAPI", defaultValue: "true in development, false in production",
            summary: "serve the OpenAPI document at /openapi.json"),
        .init(
            name: "REDIS_URL", defaultValue: "(none: in-memory)",
            summary:
                "one Redis server for shared rate limits and the result cache: redis://[user:password@]host:port[/db], rediss:// for TLS"
        ),
        .init(
            name: "REDIS_CLUSTER_NODES", defaultValue: "(none)",
            summary:
                "a Redis Cluster instead: seed nodes host:port,host:port, optionally after one redis:// or rediss:// prefix "
                + "with the credentials every node shares (rediss://app:secret@10.0.0.1:6379,10.0.0.2:6379)"),
        .init(
            name: "REDIS_TLS_CA_FILE", defaultValue: "(system roots)",
            summary: "PEM CA that signed the Redis servers' certificates, for rediss:// with a private CA"),
        .init(
            name: "FACESOCIAL_RATE_LIMIT_PER_MINUTE", defaultValue: "600",
            summary: "requests per minute per authenticated principal"),
        .init(
            name: "FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE", defaultValue: "1200",
            summary: "requests per minute per client address"),
        .init(
            name: "FACESOCIAL_CACHE_TTL_SECONDS", defaultValue: "300",
            summary: "lifetime of cached detect/analyze results (0 disables the cache)"),
        .init(
            name: "FACESOCIAL_CACHE_MAX_ENTRIES", defaultValue: "1000",
            summary: "entries kept by the in-memory result cache (least recently used go first)"),
        .init(
            name: "FACESOCIAL_AUDIT_RETENTION_DAYS", defaultValue: "365",
            summary: "audit rows older than this are purged at start and then periodically"),
        .init(
            name: "FACESOCIAL_AUDIT_PURGE_INTERVAL_SECONDS", defaultValue: "3600",
            summary: "how often the running server purges audit rows past retention"),
        .init(
            name: "FACESOCIAL_TRUSTED_PROXIES", defaultValue: "(none)",
            summary:
                "comma-separated proxy addresses/CIDRs whose X-Forwarded-For names the client (rate limits, audit)"),
        .init(
            name: "FACESOCIAL_CORS_ORIGINS", defaultValue: "(none)",
            summary: "comma-separated origins allowed by CORS; \"*\" only outside production"),
        .init(
            name: "FACESOCIAL_TLS_CERT_PATH", defaultValue: "(none)",
            summary: "PEM certificate chain for native TLS (with FACESOCIAL_TLS_KEY_PATH)"),
        .init(name: "FACESOCIAL_TLS_KEY_PATH", defaultValue: "(none)", summary: "PEM private key for native TLS"),
        .init(
            name: "FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT", defaultValue: "5",
            summary:
                "failed sign-ins of one email before each further one must wait (1 s, doubling, at most 15 min; 429 with Retry-After)"
        ),
        .init(
            name: "FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS", defaultValue: "20",
            summary: "the same for one client address, whatever the emails"),
        .init(
            name: "FACESOCIAL_LOGIN_FAILURE_DELAY_MS", defaultValue: "1000",
            summary: "the first wait past the free failures; each further failure doubles it, at most 15 min"),
        .init(
            name: "FACESOCIAL_PASSWORD_HASH_CONCURRENCY", defaultValue: "(half the cores, at least 1)",
            summary: "password hashes computed at once; up to four times as many wait, more get 429"),
    ]
}
