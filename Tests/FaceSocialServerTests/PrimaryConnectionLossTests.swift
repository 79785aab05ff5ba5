import Fluent
import Foundation
import PostgresNIO
import SQLKit
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// What the server does when PostgreSQL drops connections it holds. In the PostgreSQL suite, which
/// runs its tests one at a time: these end backends and crash the shared primary.
extension PostgresGalleryTests {
    /// Ends one backend from a separate connection, as a crash or an administrator would.
    static func terminate(backend pid: Int32, router: DatabaseRouter) async throws {
        let logger = Logger(label: "test.terminate")
        let configuration = try #require(router.postgresPrimary).coreConfiguration
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        _ = try await connection.query("SELECT pg_terminate_backend(\(pid))", logger: logger)
        try await connection.close()
    }

    /// The pool on every event loop hands out a working connection (a wedged one would make its
    /// callers wait out the pool timeout and fail).
    static func everyPoolAnswers(_ app: Application) async throws {
        for loop in app.eventLoopGroup.makeIterator() {
            let database = try #require(app.databases.database(.psql, logger: app.logger, on: loop))
            let sql = try #require(database as? any SQLDatabase)
            let row = try await withTimeout(seconds: 5) { try await sql.raw("SELECT 1 AS one").first() }
            #expect(try row?.decode(column: "one", as: Int.self) == 1)
        }
    }

    /// Takes a pooled connection, hands its backend's pid to `interrupt`, then runs `SELECT 1` on
    /// it; `resume` runs after that, however it ended. The statement's outcome, within `seconds`.
    static func interruptedStatement(
        _ router: DatabaseRouter, within seconds: Double,
        interrupt: @escaping @Sendable (Int32) async throws -> Void,
        resume: @escaping @Sendable (Int32) -> Void = { _ in }
    ) async throws -> Result<Int, any Error> {
        try await withTimeout(seconds: seconds) {
            try await router.primary.withConnection { db in
                let sql = db as! any SQLDatabase
                let row = try await sql.raw("SELECT pg_backend_pid() AS pid").first()
                let pid = try #require(try row?.decode(column: "pid", as: Int32.self))
                try await interrupt(pid)
                defer { resume(pid) }
                do {
                    return .success(
                        try await sql.raw("SELECT 1 AS one").first()?.decode(column: "one", as: Int.self) ?? 0)
                } catch {
                    return .failure(error)
                }
            }
        }
    }

    /// A transaction that creates a collection named `name`, hands its backend's pid to
    /// `interrupt`, then writes once more; `resume` runs after that write, however it ended.
    /// Returns the error the transaction failed with (nil: it committed), within `seconds`.
    static func interruptedTransaction(
        _ router: DatabaseRouter, name: String, within seconds: Double,
        interrupt: @escaping @Sendable (Int32) async throws -> Void,
        resume: @escaping @Sendable (Int32) -> Void = { _ in }
    ) async throws -> (any Error)? {
        try await withTimeout(seconds: seconds) {
            do {
                try await router.primary.transaction { tx in
                    try await GalleryCollection(id: UUID(), name: name, description: nil).create(on: tx)
                    let row = try await (tx as! any SQLDatabase).raw("SELECT pg_backend_pid() AS pid").first()
                    let pid = try #require(try row?.decode(column: "pid", as: Int32.self))
                    try await interrupt(pid)
                    defer { resume(pid) }
                    try await GalleryVersion(collectionID: UUID()).create(on: tx)
                }
                return nil
            } catch {
                return error
            }
        }
    }

    /// postgres-nio loses a statement written to a connection that has finished closing, and the
    /// pool never gets that connection back; ConnectionCheckedDatabase fails the statement instead.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aStatementOnAConnectionTheServerDroppedFailsAndThePoolRecovers() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in
            let router = app.databaseRouter
            let outcome = try await Self.interruptedStatement(router, within: 8) { pid in
                try await Self.terminate(backend: pid, router: router)
                // Long enough for NIO to close the channel and tear its pipeline down.
                try await Task.sleep(for: .milliseconds(300))
            }
            guard case .failure(let error) = outcome else {
                Issue.record("a statement on a terminated backend answered: \(outcome)")
                return
            }
            #expect(error is PostgresConnectionLost, "\(error)")
            // A client sees it as the database being unavailable, with a retry hint.
            #expect(APIError.databaseUnavailable(error)?.status == .serviceUnavailable)
            try await Self.everyPoolAnswers(app)
        }
    }

    /// The same inside a transaction, where the dropped connection is also the one ROLLBACK needs.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aTransactionWhoseConnectionIsDroppedFailsAndCommitsNothing() async throws {
        try await withFaceSocial(TestPostgres.appEnv) { app in
            let router = app.databaseRouter
            let name = "dropped-\(UUID().uuidString.prefix(8))"
            let failure = try await Self.interruptedTransaction(router, name: name, within: 8) { pid in
                try await Self.terminate(backend: pid, router: router)
                try await Task.sleep(for: .milliseconds(300))
            }
            let error = try #require(failure, "the transaction committed on a terminated backend")
            // Refused as the database being unavailable (503), not an internal error.
            #expect(APIError.databaseUnavailable(error) != nil, "\(error)")
            try await Self.everyPoolAnswers(app)
            let stored = try await GalleryCollection.query(on: try router.primary).filter(\.$name == name).count()
            #expect(stored == 0, "the interrupted transaction left its row")
        }
    }

    /// The primary crashes (immediate shutdown) while four clients write: writes answer 503 while it
    /// is down, succeed again soon after it is back, and every acknowledged one is there.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func writesComeBackAfterThePrimaryCrashesUnderConcurrentWrites() async throws {
        var env = TestPostgres.appEnv
        // Four clients writing as fast as they can are not what the rate limit is for here.
        env["FACESOCIAL_RATE_LIMIT_PER_MINUTE"] = "1000000"
        env["FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE"] = "1000000"
        try await withFaceSocial(env) { app in
            let c = GalleryClient(app: app)
            let collection = try await c.createCollection("crash-\(UUID().uuidString.prefix(8))")
            var headers = try await c.auth()
            headers.contentType = .json
            let tally = WriteTally()
            let fixedHeaders = headers

            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var n = 0
                        while !tally.stop.load(ordering: .relaxed) {
                            n += 1
                            let externalID = "w\(writer)-\(n)"
                            try await app.testing().test(
                                .POST, "/v1/collections/\(collection)/subjects", headers: fixedHeaders,
                                body: try jsonBody(["external_id": externalID, "name": externalID])
                            ) { res in
                                tally.answers.withLock { $0[res.status.code, default: 0] += 1 }
                                if res.status == .created {
                                    tally.acknowledged.withLock { $0.append(externalID) }
                                    tally.writes.add(1, ordering: .relaxed)
                                } else if res.status != .serviceUnavailable || errorCode(res) != "DATABASE_UNAVAILABLE"
                                {
                                    tally.unexpected.withLock {
                                        $0.append("\(res.status.code) \(res.body.string.prefix(200))")
                                    }
                                }
                            }
                            try await Task.sleep(for: .milliseconds(5))
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(800))
                try TestPostgres.server("primary", "crash")
                var restarted = false
                defer { if !restarted { try? TestPostgres.server("primary", "start") } }
                try await Task.sleep(for: .seconds(1))
                try TestPostgres.server("primary", "start")
                restarted = true
                let before = tally.writes.load(ordering: .relaxed)
                let back = try await TestPostgres.waitFor(30) { tally.writes.load(ordering: .relaxed) >= before + 20 }
                tally.stop.store(true, ordering: .relaxed)
                try await group.waitForAll()
                #expect(back, "writes succeed again within 30 s of the restart: \(tally.answers.withLock { $0 })")
            }

            let unexpected = tally.unexpected.withLock { $0 }
            #expect(unexpected.isEmpty, "answers other than 201 or 503 DATABASE_UNAVAILABLE: \(unexpected.prefix(5))")
            // Everything acknowledged is stored (read from the primary: the replica may lag).
            let ids = tally.acknowledged.withLock { $0 }
            let collectionID = try #require(UUID(uuidString: collection))
            let stored = try await Subject.query(on: try app.databaseRouter.primary)
                .filter(\.$collection.$id == collectionID).all(\.$externalID)
            let missing = Set(ids).subtracting(stored)
            #expect(missing.isEmpty, "\(missing.count) of \(ids.count) acknowledged writes are missing")
            #expect(
                tally.answers.withLock { $0[503, default: 0] } > 0,
                "some writes met the crash: \(tally.answers.withLock { $0 })")
            try await Self.everyPoolAnswers(app)
        }
    }
}

/// What the concurrent writers saw, shared between their tasks.
final class WriteTally: Sendable {
    let acknowledged = Mutex<[String]>([])
    let unexpected = Mutex<[String]>([])
    let answers = Mutex<[UInt: Int]>([:])
    let stop = Atomic<Bool>(false)
    let writes = Atomic<Int>(0)
}
