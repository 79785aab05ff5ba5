import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import SQLKit
import Synchronization
import Vapor

/// Where each query goes. Writes, and reads that must see the request's own writes, use the
/// primary. Read-only work (listings, gallery loads) goes to the next healthy replica in turn; a
/// replica that is down, not in recovery, or further behind the primary than the lag bound is
/// skipped, and with none left reads use the primary.
public final class DatabaseRouter: Sendable {
    public enum Kind: String, Sendable { case sqlite, postgres }

    public struct ReplicaState: Sendable, Equatable {
        public var healthy: Bool
        public var lagMs: Double?
        public var detail: String
    }

    public let kind: Kind
    public let primaryID: DatabaseID
    public let replicaIDs: [DatabaseID]
    /// The primary's connection settings, for the gallery's LISTEN connection.
    let postgresPrimary: SQLPostgresConfiguration?
    let maxLagMs: Double
    /// Connections each database's pool may open (per event loop × event loops).
    let poolCapacity: Int
    /// PostgreSQL's `application_name` of this instance's connections, to count them in
    /// `pg_stat_activity` (Fluent's pools do not expose their counts).
    let applicationName: String?
    private let databases: Databases
    let logger: Logger
    private let state: Mutex<(replicas: [ReplicaState], next: Int, samples: [(Date, UInt64)])>

    init(
        kind: Kind, primaryID: DatabaseID, replicaIDs: [DatabaseID], postgresPrimary: SQLPostgresConfiguration?,
        maxLagMs: Int, databases: Databases, logger: Logger, poolCapacity: Int = 1, applicationName: String? = nil
    ) {
        self.poolCapacity = poolCapacity
        self.applicationName = applicationName
        self.kind = kind
        self.primaryID = primaryID
        self.replicaIDs = replicaIDs
        self.postgresPrimary = postgresPrimary
        self.maxLagMs = Double(maxLagMs)
        self.databases = databases
        self.logger = logger
        // Replicas start unhealthy: they serve only once a check has seen them caught up.
        state = Mutex(
            (replicaIDs.map { _ in ReplicaState(healthy: false, lagMs: nil, detail: "not checked yet") }, 0, []))
    }

    /// Throws once the application has shut its databases down (a background check or a late
    /// request can still ask then; that is a 503, not a crash).
    func database(_ id: DatabaseID) throws -> any Database {
        guard let database = databases.database(id, logger: logger, on: databases.eventLoopGroup.any()) else {
            throw ConnectionPoolError.shutdown
        }
        return database
    }

    /// The primary, for writes and read-your-own-writes.
    public var primary: any Database { get throws { try database(primaryID) } }

    public var replicaStates: [ReplicaState] { state.withLock { $0.replicas } }

    /// The next healthy replica in turn, or nil when none is.
    func nextReplica() -> Int? {
        state.withLock { s in
            guard !s.replicas.isEmpty else { return nil }
            for step in 0..<s.replicas.count {
                let index = (s.next + step) % s.replicas.count
                if s.replicas[index].healthy {
                    s.next = index + 1
                    return index
                }
            }
            return nil
        }
    }

    /// Runs read-only work on a healthy replica, or on the primary when none is. A replica that
    /// fails the query is marked down at once and the work is retried on the primary.
    public func read<T: Sendable>(_ work: @Sendable (any Database) async throws -> T) async throws -> T {
        if let index = nextReplica() {
            do {
                return try await work(try database(replicaIDs[index]))
            } catch {
                markDown(index, "query failed: \(error)")
            }
        }
        return try await work(try primary)
    }

    /// The database a read would use now (for tests and the readiness check).
    public func readerID() -> DatabaseID {
        nextReplica().map { replicaIDs[$0] } ?? primaryID
    }

    func markDown(_ index: Int, _ detail: String) {
        state.withLock { $0.replicas[index] = ReplicaState(healthy: false, lagMs: nil, detail: detail) }
        logger.warning(
            "replica skipped", metadata: ["replica": .string(replicaIDs[index].string), "reason": .string(detail)])
    }

    /// `X/Y` hexadecimal WAL positions as one number.
    static func lsn(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else {
            return nil
        }
        return high << 32 | low
    }

    /// One round of checks. Lag is measured by WAL position, not by replay timestamps (which grow
    /// on an idle primary): the replica's replayed position is matched with the primary's
    /// positions sampled at earlier checks, and its lag is the age of the newest sample it has
    /// reached. Caught up with the current sample means no lag.
    public func checkReplicas() async {
        guard !replicaIDs.isEmpty else { return }
        let now = Date()
        var primaryLSN: UInt64?
        do {
            let row = try await (try primary as! any SQLDatabase).raw("SELECT pg_current_wal_lsn()::text AS lsn")
                .first()
            primaryLSN = try row.flatMap { Self.lsn(try $0.decode(column: "lsn", as: String.self)) }
        } catch {
            logger.warning("primary WAL position unavailable: \(error)")
        }
        let samples: [(Date, UInt64)] = state.withLock { s in
            if let primaryLSN { s.samples.append((now, primaryLSN)) }
            // Keep what a lag bound can need, plus a margin.
            s.samples.removeAll { now.timeIntervalSince($0.0) * 1000 > max(maxLagMs * 4, 10_000) }
            return s.samples
        }
        for (index, id) in replicaIDs.enumerated() {
            let result: ReplicaState
            do {
                let row = try await withTimeout(seconds: 2) {
                    try await (try self.database(id) as! any SQLDatabase).raw(
                        "SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS replay"
                    ).first()
                }
                guard let row, try row.decode(column: "recovery", as: Bool.self) else {
                    throw DatabaseSetupError.replica("not in recovery: it is not a replica (or was promoted)")
                }
                let replay = try row.decode(column: "replay", as: String?.self).flatMap(Self.lsn)
                guard let replay else { throw DatabaseSetupError.replica("no replayed WAL position") }
                // The newest primary sample this replica has replayed.
                if let reached = samples.last(where: { $0.1 <= replay }) {
                    let lag = reached.0 == samples.last?.0 ? 0 : now.timeIntervalSince(reached.0) * 1000
                    result = ReplicaState(
                        healthy: lag <= maxLagMs, lagMs: lag,
                        detail: lag <= maxLagMs ? "ok" : "lags \(Int(lag)) ms (bound \(Int(maxLagMs)) ms)")
                } else {
                    result = ReplicaState(healthy: false, lagMs: nil, detail: "behind every recent primary position")
                }
            } catch {
                result = ReplicaState(healthy: false, lagMs: nil, detail: "\(error)")
            }
            let changed = state.withLock { s in
                let was = s.replicas[index].healthy
                s.replicas[index] = result
                return was != result.healthy
            }
            if changed {
                logger.notice(
                    "replica \(result.healthy ? "in use" : "skipped")",
                    metadata: ["replica": .string(id.string), "detail": .string(result.detail)])
            }
        }
    }
}

enum DatabaseSetupError: Error, CustomStringConvertible {
    case replica(String)
    case timeout

    var description: String {
        switch self {
        case .replica(let reason): reason
        case .timeout: "timed out"
        }
    }
}

/// Runs `work`, giving up after `seconds` (a replica that stops answering must not stall checks).
/// Not a task group: a group waits for its children, and a query stuck on a dead socket may not
/// react to cancellation; here the caller moves on and the stuck work ends when its socket does.
func withTimeout<T: Sendable>(seconds: Double, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
    let resumed = Mutex(false)
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let finish: @Sendable (Result<T, any Error>) -> Void = { result in
            let first = resumed.withLock { done in
                defer { done = true }
                return !done
            }
            if first { continuation.resume(with: result) }
        }
        let worker = Task {
            do { finish(.success(try await work())) } catch { finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            finish(.failure(DatabaseSetupError.timeout))
            worker.cancel()
        }
    }
}

struct DatabaseRouterKey: StorageKey {
    typealias Value = DatabaseRouter
}

extension Application {
    /// The query router; set up by `FaceSocialApp.configure`.
    public var databaseRouter: DatabaseRouter {
        guard let router = storage[DatabaseRouterKey.self] else { fatalError("configure() sets up the database") }
        return router
    }
}

/// Database setup from `DATABASE_URL` and `DATABASE_REPLICA_URLS`.
public enum DatabaseSetup {
    /// Registers the primary (and replicas) with Fluent and installs the router.
    /// The SQLite file holds password, API-key and refresh-token hashes: readable and writable by
    /// the server's user only (0600; SQLite gives its journal the mode of the database file).
    static func makePrivate(sqliteFile path: String) throws {
        guard path != ":memory:" else { return }
        let files = FileManager.default
        if files.fileExists(atPath: path) {
            try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        } else if !files.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) {
            throw ConfigError.invalid(variable: "DATABASE_URL", reason: "cannot create the SQLite file \(path)")
        }
    }

    public static func configure(_ app: Application, config: AppConfig) throws {
        let url = config.databaseURL
        let router: DatabaseRouter
        // Fluent's pools are per event loop: FACESOCIAL_DB_POOL_PER_LOOP connections on each, for
        // each PostgreSQL database (SQLite: one per loop).
        let loops = Array(app.eventLoopGroup.makeIterator()).count
        if let url, url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            // Named per process so /metrics can count this instance's connections on the server.
            let applicationName = String("facesocial-\(ProcessInfo.processInfo.hostName)".prefix(48)) + "-\(getpid())"
            func named(_ configuration: SQLPostgresConfiguration) -> SQLPostgresConfiguration {
                var configuration = configuration
                configuration.coreConfiguration.options.additionalStartupParameters.append(
                    ("application_name", applicationName))
                return configuration
            }
            let primary = named(try SQLPostgresConfiguration(url: url))
            // Checked connections: see ConnectionCheckedDatabase (a lost statement wedged the pool).
            let silenceLimit: TimeAmount? =
                config.databaseStatementTimeoutMs > 0 ? .milliseconds(Int64(config.databaseStatementTimeoutMs)) : nil
            app.databases.use(
                ConnectionCheckedConfiguration(
                    .postgres(
                        configuration: primary, maxConnectionsPerEventLoop: config.databasePoolPerLoop,
                        connectionPoolTimeout: .milliseconds(Int64(config.databasePoolTimeoutMs))),
                    silenceLimit: silenceLimit),
                as: .psql, isDefault: true)
            var replicaIDs: [DatabaseID] = []
            for (index, replicaURL) in config.databaseReplicaURLs.enumerated() {
                guard replicaURL.hasPrefix("postgres://") || replicaURL.hasPrefix("postgresql://") else {
                    throw ConfigError.invalid(
                        variable: "DATABASE_REPLICA_URLS", reason: "replicas must be postgres:// URLs")
                }
                let id = DatabaseID(string: "replica-\(index)")
                // A short pool timeout: a dead replica must fail fast so reads move on.
                app.databases.use(
                    ConnectionCheckedConfiguration(
                        .postgres(
                            configuration: named(try SQLPostgresConfiguration(url: replicaURL)),
                            maxConnectionsPerEventLoop: config.databasePoolPerLoop,
                            connectionPoolTimeout: .seconds(2)
                        ), silenceLimit: silenceLimit),
                    as: id, isDefault: false)
                replicaIDs.append(id)
            }
            router = DatabaseRouter(
                kind: .postgres, primaryID: .psql, replicaIDs: replicaIDs, postgresPrimary: primary,
                maxLagMs: config.replicaMaxLagMs, databases: app.databases, logger: app.logger,
                poolCapacity: loops * config.databasePoolPerLoop, applicationName: applicationName)
        } else {
            guard config.databaseReplicaURLs.isEmpty else {
                throw ConfigError.invalid(
                    variable: "DATABASE_REPLICA_URLS", reason: "read replicas need a postgres:// DATABASE_URL")
            }
            let path: String
            if let url {
                guard url.hasPrefix("sqlite://") else {
                    throw ConfigError.invalid(
                        variable: "DATABASE_URL", reason: "expected sqlite:///path or postgres://user:pass@host/db")
                }
                path = String(url.dropFirst("sqlite://".count))
            } else {
                try FileManager.default.createDirectory(
                    at: config.dataDirectory, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
                try FileManager.default.setAttributes(
                    [.posixPermissions: 0o700], ofItemAtPath: config.dataDirectory.path)
                path = config.dataDirectory.appendingPathComponent("facesocial.sqlite").path
            }
            try Self.makePrivate(sqliteFile: path)
            app.databases.use(.sqlite(.file(path)), as: .sqlite, isDefault: true)
            router = DatabaseRouter(
                kind: .sqlite, primaryID: .sqlite, replicaIDs: [], postgresPrimary: nil,
                maxLagMs: config.replicaMaxLagMs,
                databases: app.databases, logger: app.logger, poolCapacity: loops)
        }
        app.storage[DatabaseRouterKey.self] = router
        for migration in SchemaMigrations.all { app.migrations.add(migration, to: router.primaryID) }
    }
}
