import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The PostgreSQL primary and streaming replica that scripts/test-services/postgres.sh starts
/// (scripts/test.sh, and so `make test` and CI, always do).
enum TestPostgres {
    static let env = ProcessInfo.processInfo.environment
    static let primary = env["FACESOCIAL_TEST_POSTGRES_URL"]
    static let replica = env["FACESOCIAL_TEST_POSTGRES_REPLICA_URL"]
    static var available: Bool { primary != nil && replica != nil }

    static var appEnv: [String: String] {
        [
            "DATABASE_URL": primary ?? "", "DATABASE_REPLICA_URLS": replica ?? "",
            "FACESOCIAL_REPLICA_MAX_LAG_MS": "1000",
        ]
    }

    /// Stops or starts the replica with pg_ctl, as the user that owns its data.
    static func replica(_ action: String) throws { try server("replica", action) }

    /// Stops, crashes or starts the primary or the replica with pg_ctl, as the user that owns its data.
    static func server(_ name: String, _ action: String) throws {
        let pgctl = try #require(env["FACESOCIAL_TEST_PG_CTL"])
        let data =
            name == "primary"
            ? try #require(env["FACESOCIAL_TEST_POSTGRES_DIR"]) + "/primary"
            : try #require(env["FACESOCIAL_TEST_POSTGRES_REPLICA_DATA"])
        let user = env["FACESOCIAL_TEST_POSTGRES_USER"] ?? "postgres"
        // Start does not wait (-W): the tests wait for the server to answer instead.
        var arguments = [pgctl, "-D", data]
        // "crash" is an immediate shutdown: no checkpoint, crash recovery at the next start.
        switch action {
        case "stop": arguments += ["-w", "-t", "60", "-m", "fast", "stop"]
        case "crash": arguments += ["-w", "-t", "60", "-m", "immediate", "stop"]
        default: arguments += ["-W", "-l", data + "/../\(name).log", "start"]
        }
        let process = Process()
        if getuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--"] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: pgctl)
            process.arguments = Array(arguments.dropFirst())
        }
        // The server pg_ctl starts must not inherit the test's output pipes (it would hold them open).
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Polled rather than waitUntilExit(): the started server keeps running beside it, and a
        // wait that never returns must not hang the suite.
        let deadline = Date().addingTimeInterval(action == "start" ? 3 : 60)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if !process.isRunning { #expect(process.terminationStatus == 0, "pg_ctl \(action) failed") }
    }

    static func waitFor(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}

// Serialized: the tests share one database and stop the shared replica. The time limit only
// catches a hang (each wait has its own bound): with the whole suite in parallel and a container
// build beside it on 2 cores, the two-instance scenario took 180 s where it takes 18 s alone.
@Suite("Galleries on PostgreSQL with a streaming replica", .serialized, .timeLimit(.minutes(10)))
struct PostgresGalleryTests {
    init() {
        if !TestPostgres.available {
            print(
                "PostgreSQL gallery tests skipped: FACESOCIAL_TEST_POSTGRES_URL is not set "
                    + "(scripts/test.sh starts a primary and a replica and sets it)")
        }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func enrolIdentifyAcrossTwoInstances() async throws {
        // A 600 s safety-net poll (ten times this), so only NOTIFY can carry the writes across.
        let env = TestPostgres.appEnv.merging(["FACESOCIAL_GALLERY_POLL_MS": "60000"]) { $1 }
        try await withTwoInstances(env) { first, second in
            // Reads go to the replica once it is seen caught up.
            #expect(try await TestPostgres.waitFor { second.databaseRouter.replicaStates.first?.healthy == true })
            try await GalleryScenario.run(writer: first, reader: second)
        }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func searchByStoredFaceAndByEmbedding() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in try await GalleryScenario.searchByFaceAndByEmbedding(app)
        }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func idempotentEnrolment() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in try await GalleryScenario.idempotentEnrolment(app) }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func enrolJobs() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in try await GalleryScenario.enrolJobs(app) }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func clustersOfUnnamedFaces() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in try await GalleryScenario.clustersOfUnnamedFaces(app) }
    }

    /// A collection on the opt-in recognizer (RecognitionModelTests has the SQLite run).
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func collectionOnW600K() async throws {
        let optIn = try optInModels.get()
        try await withFaceSocial(TestPostgres.appEnv.merging(optIn.env) { $1 }, registry: optIn.registry) { app in
            try await GalleryScenario.collectionOnW600K(app)
        }
    }

    /// /metrics counts this instance's connections as PostgreSQL sees them, per database.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func poolConnectionsAreReadFromTheServer() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in
            try await app.testing().test(.GET, "/metrics") { res in
                let text = res.body.string
                func value(_ labels: String) -> Double? {
                    text.split(separator: "\n").first { $0.hasPrefix("db_pool_connections{\(labels)} ") }
                        .flatMap { Double($0.split(separator: " ").last!) }
                }
                // The scrape's own query holds a primary connection while it runs.
                #expect((value(#"database="primary",state="active""#) ?? 0) >= 1, "\(text)")
                #expect(value(#"database="primary",state="max""#).map { $0 >= 1 } == true)
                #expect(value(#"database="replica-0",state="idle""#) != nil)
            }
        }
    }

    /// FACESOCIAL_DB_POOL_PER_LOOP and FACESOCIAL_DB_POOL_TIMEOUT_MS reach Fluent's pools: four
    /// statements at once on one event loop with three connections per loop run on three backends,
    /// and the fourth gives up waiting after 0.5 s (the others hold theirs for 1.5 s) as a 503.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func poolSizeAndWaitAreConfigurable() async throws {
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_DB_POOL_PER_LOOP": "0"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_DB_POOL_TIMEOUT_MS": "ten"]) }
        let env = TestPostgres.appEnv.merging(
            ["FACESOCIAL_DB_POOL_PER_LOOP": "3", "FACESOCIAL_DB_POOL_TIMEOUT_MS": "500"]) { $1 }
        try await withFaceSocial(env) { app in
            let loops = Array(app.eventLoopGroup.makeIterator()).count
            #expect(app.databaseRouter.poolCapacity == 3 * loops)
            let database = try #require(
                app.databases.database(.psql, logger: app.logger, on: app.eventLoopGroup.next()))
            let sql = try #require(database as? any SQLDatabase)
            let outcomes = try await withThrowingTaskGroup(of: Result<Int32, any Error>.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        do {
                            let row = try await sql.raw("SELECT pg_backend_pid() AS pid, pg_sleep(1.5)::text AS slept")
                                .first()
                            return .success(try #require(try row?.decode(column: "pid", as: Int32.self)))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let pids = outcomes.compactMap { try? $0.get() }
            #expect(Set(pids).count == 3, "three statements on three backends: \(outcomes)")
            let failures = outcomes.compactMap { outcome -> (any Error)? in
                if case .failure(let error) = outcome { return error }
                return nil
            }
            #expect(failures.count == 1, "\(outcomes)")
            if let failure = failures.first {
                #expect(APIError.databaseUnavailable(failure)?.code == "DATABASE_UNAVAILABLE", "\(failure)")
            }
        }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func readsUseTheReplicaAndSurviveItsLoss() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in
            let router = app.databaseRouter
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("replica-\(UUID().uuidString.prefix(8))")
            let subject = try await c.createSubject(collection, "obama")
            _ = try await c.enrol(collection, subject, "obama.jpg")
            #expect(try await TestPostgres.waitFor { router.replicaStates.first?.healthy == true })
            #expect(router.readerID().string == "replica-0")
            // The replica really holds the rows (streamed from the primary).
            let replicaSQL = try router.database(router.replicaIDs[0]) as! any SQLDatabase
            #expect(
                try await TestPostgres.waitFor {
                    let n = try await replicaSQL.raw(
                        "SELECT COUNT(*) AS n FROM subjects WHERE id = \(bind: UUID(uuidString: subject)!)"
                    ).first()?.decode(column: "n", as: Int.self)
                    return n == 1
                })
            let template = "/v1/collections/{collection}/subjects"
            let listed = try await c.json(.GET, "/v1/collections/\(collection)/subjects", template: template)
            #expect(listed[path: "data.total"] as? Int == 1)

            try TestPostgres.replica("stop")
            // Reads still work at once (a failing replica query falls back to the primary) ...
            let during = try await c.json(.GET, "/v1/collections/\(collection)/subjects", template: template)
            #expect(during[path: "data.total"] as? Int == 1)
            // ... the health check marks the replica down, and identify loads from the primary.
            #expect(try await TestPostgres.waitFor { router.replicaStates.first?.healthy == false })
            #expect(router.readerID() == router.primaryID)
            let sql = try router.primary as! any SQLDatabase
            try await sql.raw("UPDATE gallery_versions SET version = version + 1").run()
            await app.gallery.pollVersions()
            let faces = try await c.identify(collection, "obama2.jpg")
            #expect(faces.first?.0 == "obama" && faces.first?.2 == false, "\(faces)")

            try TestPostgres.replica("start")
            #expect(
                try await TestPostgres.waitFor(30) { router.replicaStates.first?.healthy == true },
                "the restarted replica is used again: \(router.replicaStates)")
        }
    }

    /// With the primary down, writes answer 503 DATABASE_UNAVAILABLE with Retry-After (never a
    /// 500, never a false success); once it is back, every acknowledged write is there and writes
    /// succeed again.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func writesAnswer503WhileThePrimaryIsDownAndNothingAcknowledgedIsLost() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("primary-\(UUID().uuidString.prefix(8))")
            let subject = try await c.createSubject(collection, "obama")
            _ = try await c.enrol(collection, subject, "obama.jpg")
            var headers = try await c.auth()
            headers.contentType = .json

            try TestPostgres.server("primary", "stop")
            var restarted = false
            defer { if !restarted { try? TestPostgres.server("primary", "start") } }
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/subjects", headers: headers,
                body: try jsonBody(["external_id": "biden", "name": "Biden"])
            ) { res in
                #expect(res.status == .serviceUnavailable, "\(res.body.string)")
                #expect(errorCode(res) == "DATABASE_UNAVAILABLE")
                #expect(res.headers.first(name: "Retry-After") == "5")
                expectConforms("POST", "/v1/collections/{collection}/subjects", res)
            }

            try TestPostgres.server("primary", "start")
            restarted = true
            var created = false
            for _ in 0..<150 where !created {
                try await app.testing().test(
                    .POST, "/v1/collections/\(collection)/subjects", headers: headers,
                    body: try jsonBody(["external_id": "biden", "name": "Biden"])
                ) { res in
                    created = res.status == .created
                    #expect([.created, .serviceUnavailable].contains(res.status), "\(res.body.string)")
                }
                if !created { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(created, "writes succeed once the primary is back")
            let template = "/v1/collections/{collection}/subjects"
            // Listings may come from the replica, which is up to the lag bound behind.
            #expect(
                try await TestPostgres.waitFor {
                    let listed = try await c.json(.GET, "/v1/collections/\(collection)/subjects", template: template)
                    return listed[path: "data.total"] as? Int == 2
                }, "both subjects are listed")
            let faces = try await c.identify(collection, "obama2.jpg")
            #expect(faces.first?.0 == "obama", "the face enrolled before the outage is still found: \(faces)")
        }
    }

    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aLaggingReplicaIsSkipped() async throws {
        // A zero lag bound: any write the replica has not replayed at the check makes it lag.
        var env = TestPostgres.appEnv
        env["FACESOCIAL_REPLICA_MAX_LAG_MS"] = "0"
        try await withFaceSocial(env) { app in
            let router = app.databaseRouter
            #expect(try await TestPostgres.waitFor { router.replicaStates.first?.healthy == true })
            // Pause replay on the replica, write on the primary: the replica falls behind.
            let replicaSQL = try router.database(router.replicaIDs[0]) as! any SQLDatabase
            try await replicaSQL.raw("SELECT pg_wal_replay_pause()").run()
            defer { Task { try? await replicaSQL.raw("SELECT pg_wal_replay_resume()").run() } }
            _ = try await GalleryClient(app: app).createCollection("lag-\(UUID().uuidString.prefix(8))")
            #expect(
                try await TestPostgres.waitFor { router.replicaStates.first?.healthy == false },
                "\(router.replicaStates)")
            #expect(router.readerID() == router.primaryID)
            try await replicaSQL.raw("SELECT pg_wal_replay_resume()").run()
            #expect(try await TestPostgres.waitFor { router.replicaStates.first?.healthy == true })
        }
    }
}
