import FaceKit
import FaceSearch
import Foundation
import Logging
import ModelRuntime

public enum Profile: String, Sendable {
    case development, production
}

public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(variable: String, reason: String)
    case insecureDefault(variable: String)

    public var description: String {
        switch self {
        case .invalid(let variable, let reason): "\(variable): \(reason)"
        case .insecureDefault(let variable):
            "\(variable) must be set to your own secret in the production profile (the development default is public)"
        }
    }
}

/// The server's configuration, read from environment variables with safe development defaults.
public struct AppConfig: Sendable {
    public var profile: Profile
    public var host: String
    public var port: Int
    public var dataDirectory: URL
    public var databaseURL: String?
    public var jwtSecret: String
    public var dataKey: String
    /// Id stored with each row sealed by `dataKey` (default: the key's fingerprint).
    public var dataKeyID: String?
    /// Retired keys that still open older rows, by id (`FACESOCIAL_DATA_KEYS_OLD=id:base64,...`).
    public var retiredDataKeys: [String: String] = [:]
    public var databaseReplicaURLs: [String] = []
    public var replicaMaxLagMs: Int = 1000
    /// How long a PostgreSQL statement may go without a byte from the server before its connection
    /// is closed and the request answered 503 (0: wait forever).
    public var databaseStatementTimeoutMs: Int = 30_000
    /// PostgreSQL connections per event loop (Fluent's pools are per loop), for the primary and
    /// each replica.
    public var databasePoolPerLoop: Int = 1
    /// How long a request waits for a free PostgreSQL primary connection before 503.
    public var databasePoolTimeoutMs: Int = 10_000
    /// How often an instance checks for gallery changes made by other instances.
    public var galleryPollMs: Int = 500
    /// From this many faces of one model in a collection, identify searches the 8-bit inverted
    /// file instead of every row (docs/galleries.md).
    public var galleryApproximateFrom: Int = FaceIndex.Policy.standard.approximateFrom
    public var galleryRefinementBits: Int = FaceIndex.Policy.standard.refinementBits
    /// Run pending migrations when the server starts (`facesocial migrate` runs them on demand).
    public var autoMigrate: Bool = true
    public var modelDirectory: URL
    public var manifestURL: URL
    public var modelMirror: URL?
    /// Restricted model licences the operator accepted (`FACESOCIAL_ACCEPT_MODEL_LICENCES`).
    public var acceptedModelLicences: Set<String> = []
    public var preloadModels: [String]
    /// Precision and OpenVINO hint per model: measured on this CPU (and cached), or fixed by settings.
    public var tuning: TuningSettings
    public var imageLimits: ImageLimits
    public var maxFaces: Int
    public var verifyThreshold: Float
    public var livenessThreshold: Float
    public var batchMaxImages: Int
    /// The body a batch route takes: as many images as a batch holds, each at most the image limit.
    public var batchBodyLimit: Int { imageLimits.maxBytes * batchMaxImages }
    public var batchConcurrency: Int
    public var logLevel: Logger.Level
    public var jsonLogs: Bool
    public var engines = EngineConfig()
    /// Devices, budgets, pools, placement, TTLs, admission and batching (docs/memory.md).
    public var memory: MemoryPolicy = MemoryPolicy()
    public var security = SecurityConfig()

    // Public on purpose: they only protect development setups, and production refuses them.
    static let developmentJWTSecret = "facesocial-development-jwt-secret-do-not-use"
    static let developmentDataKey = "ZmFjZXNvY2lhbC1kZXZlbG9wbWVudC1kYXRhLWtleSE="

    /// Development listens on loopback only unless told otherwise; production (containers, behind
    /// a proxy) on every address.
    public static func defaultHost(_ profile: Profile) -> String {
        profile == .production ? "0.0.0.0" : "127.0.0.1"
    }

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws
        -> AppConfig
    {
        let read = EnvironmentReader(env)
        let value = read.value
        let integer = read.integer
        let number = read.number
        guard let profile = Profile(rawValue: value("FACESOCIAL_PROFILE") ?? "development") else {
            throw ConfigError.invalid(variable: "FACESOCIAL_PROFILE", reason: "expected development or production")
        }
        var hint: PerformanceHint?
        if let raw = value("FACESOCIAL_OV_PERFORMANCE_HINT") {
            guard let parsed = PerformanceHint(rawValue: raw.uppercased()) else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_OV_PERFORMANCE_HINT", reason: "expected LATENCY or THROUGHPUT")
            }
            hint = parsed
        }
        var precision: InferencePrecision?
        if let raw = value("FACESOCIAL_OV_PRECISION")?.lowercased() {
            guard let parsed = InferencePrecision(rawValue: raw), parsed != .auto else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_OV_PRECISION",
                    reason: "expected f32 or bf16 (bf16 only where the manifest allows it)")
            }
            precision = parsed
        }
        guard let tuneMode = TuningSettings.Mode(rawValue: (value("FACESOCIAL_TUNE") ?? "auto").lowercased()) else {
            throw ConfigError.invalid(variable: "FACESOCIAL_TUNE", reason: "expected auto or off")
        }
        let dataDirectory = URL(fileURLWithPath: value("FACESOCIAL_DATA_DIR") ?? "var/data")
        let tuningFile = value("FACESOCIAL_TUNING_FILE").map { URL(fileURLWithPath: $0) }
        let levelName = value("FACESOCIAL_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            throw ConfigError.invalid(variable: "FACESOCIAL_LOG_LEVEL", reason: "unknown level \"\(levelName)\"")
        }
        let format = value("FACESOCIAL_LOG_FORMAT")?.lowercased()
        guard format == nil || format == "json" || format == "text" else {
            throw ConfigError.invalid(variable: "FACESOCIAL_LOG_FORMAT", reason: "expected text or json")
        }

        let memory: MemoryPolicy
        do { memory = try MemoryPolicy.parse(env) } catch {
            throw ConfigError.invalid(variable: error.variable, reason: error.reason)
        }

        var config = AppConfig(
            profile: profile,
            host: value("FACESOCIAL_HOST") ?? defaultHost(profile),
            port: try integer("FACESOCIAL_PORT", 8000, 1...65535),
            dataDirectory: dataDirectory,
            databaseURL: value("DATABASE_URL"),
            jwtSecret: value("JWT_SECRET_KEY") ?? developmentJWTSecret,
            dataKey: value("FACESOCIAL_DATA_KEY") ?? developmentDataKey,
            modelDirectory: URL(fileURLWithPath: value("FACESOCIAL_MODEL_DIR") ?? "var/models"),
            manifestURL: URL(fileURLWithPath: value("FACESOCIAL_MODEL_MANIFEST") ?? "models/manifest.json"),
            modelMirror: value("FACESOCIAL_MODEL_MIRROR").map { URL(fileURLWithPath: $0) },
            preloadModels: (value("FACESOCIAL_PRELOAD_MODELS") ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty },
            tuning: TuningSettings(
                mode: tuneMode, cacheFile: tuningFile ?? dataDirectory.appendingPathComponent("tuning.json"),
                hint: hint, precision: precision),
            imageLimits: ImageLimits(
                maxBytes: try integer("FACESOCIAL_MAX_BODY_BYTES", 10 * 1024 * 1024, 1024...(512 * 1024 * 1024)),
                maxSide: try integer("FACESOCIAL_MAX_IMAGE_SIDE", 8000, 16...65535),
                maxPixels: try integer("FACESOCIAL_MAX_IMAGE_PIXELS", 40_000_000, 256...1_000_000_000)),
            maxFaces: try integer("FACESOCIAL_MAX_FACES", 100, 1...10_000),
            verifyThreshold: try number("FACESOCIAL_VERIFY_THRESHOLD", Thresholds.verify, -1...1),
            livenessThreshold: try number("FACESOCIAL_LIVENESS_THRESHOLD", Thresholds.liveness, -50...50),
            batchMaxImages: try integer("FACESOCIAL_BATCH_MAX_IMAGES", 16, 1...256),
            batchConcurrency: try integer("FACESOCIAL_BATCH_CONCURRENCY", 2, 1...64),
            logLevel: level,
            jsonLogs: format.map { $0 == "json" } ?? (profile == .production))
        config.engines = try EngineConfig.fromEnvironment(env)
        config.acceptedModelLicences = ModelStore.acceptedLicences(value("FACESOCIAL_ACCEPT_MODEL_LICENCES"))
        config.memory = memory
        config.security = try SecurityConfig.fromEnvironment(env, profile: profile)
        var withData = config
        withData.dataKeyID = value("FACESOCIAL_DATA_KEY_ID")
        for entry in (value("FACESOCIAL_DATA_KEYS_OLD") ?? "").split(separator: ",") {
            let parts = entry.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ConfigError.invalid(variable: "FACESOCIAL_DATA_KEYS_OLD", reason: "expected id:base64,...")
            }
            withData.retiredDataKeys[parts[0]] = parts[1]
        }
        withData.databaseReplicaURLs = (value("DATABASE_REPLICA_URLS") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        withData.replicaMaxLagMs = try integer("FACESOCIAL_REPLICA_MAX_LAG_MS", 1000, 0...3_600_000)
        withData.databaseStatementTimeoutMs = try integer(
            "FACESOCIAL_DB_STATEMENT_TIMEOUT_MS", 30_000, 0...3_600_000)
        withData.databasePoolPerLoop = try integer("FACESOCIAL_DB_POOL_PER_LOOP", 1, 1...64)
        withData.databasePoolTimeoutMs = try integer("FACESOCIAL_DB_POOL_TIMEOUT_MS", 10_000, 100...600_000)
        withData.galleryPollMs = try integer("FACESOCIAL_GALLERY_POLL_MS", 500, 50...60_000)
        withData.galleryApproximateFrom = try integer(
            "FACESOCIAL_GALLERY_APPROXIMATE_FROM", FaceIndex.Policy.standard.approximateFrom, 1_000...Int(Int32.max))
        withData.galleryRefinementBits = try integer(
            "FACESOCIAL_GALLERY_REFINEMENT_BITS", FaceIndex.Policy.standard.refinementBits, 0...2)
        if let raw = value("FACESOCIAL_AUTO_MIGRATE")?.lowercased() {
            guard ["true", "false", "1", "0"].contains(raw) else {
                throw ConfigError.invalid(variable: "FACESOCIAL_AUTO_MIGRATE", reason: "expected true or false")
            }
            withData.autoMigrate = raw == "true" || raw == "1"
        }
        try withData.validate()
        return withData
    }

    /// Production must never run on the public development secrets.
    public func validate() throws {
        guard profile == .production else { return try security.validate(profile: profile) }
        if jwtSecret == Self.developmentJWTSecret { throw ConfigError.insecureDefault(variable: "JWT_SECRET_KEY") }
        if jwtSecret.utf8.count < 32 {
            throw ConfigError.invalid(variable: "JWT_SECRET_KEY", reason: "must be at least 32 characters")
        }
        if dataKey == Self.developmentDataKey { throw ConfigError.insecureDefault(variable: "FACESOCIAL_DATA_KEY") }
        guard let key = Data(base64Encoded: dataKey), key.count == 32 else {
            throw ConfigError.invalid(variable: "FACESOCIAL_DATA_KEY", reason: "must be base64 of exactly 32 bytes")
        }
        for (id, text) in retiredDataKeys {
            guard let key = Data(base64Encoded: text), key.count == 32 else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_DATA_KEYS_OLD", reason: "key \(id) must be base64 of exactly 32 bytes")
            }
        }
        try security.validate(profile: profile)
    }
}
