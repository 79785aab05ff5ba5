import Fluent
import Foundation
import SQLKit
import Testing
import Vapor

@testable import FaceSocialServer

/// What the server does when PostgreSQL stays connected but stops answering (a stopped process, a
/// stalled disk, a paused VM). Only the backend serving the test's connection is stopped
/// (SIGSTOP), so the shared primary keeps serving everything else; it is always continued after.
extension PostgresGalleryTests {
    /// One second without a byte from the server fails a statement.
    static let silentEnv = TestPostgres.appEnv.merging(["FACESOCIAL_DB_STATEMENT_TIMEOUT_MS": "1000"]) { $1 }

    /// The statement fails as the database being unavailable once the server has been silent for
    /// the limit (without the watch it waits as long as the backend is stopped: the outer 20 s
    /// bound fails the test instead of hanging it), and every event loop's pool answers after.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aStatementTheServerNeverAnswersFailsAndThePoolRecovers() async throws {
        try await withFaceSocial(Self.silentEnv) { app in
            let outcome = try await Self.interruptedStatement(
                app.databaseRouter, within: 20, interrupt: { kill($0, SIGSTOP) }, resume: { kill($0, SIGCONT) })
            guard case .failure(let error) = outcome else {
                Issue.record("a stopped backend answered: \(outcome)")
                return
            }
            #expect(error is PostgresStatementTimedOut, "\(error)")
            let answer = try #require(APIError.databaseUnavailable(error))
            #expect(answer.status == .serviceUnavailable && answer.code == "DATABASE_UNAVAILABLE")
            try await Self.everyPoolAnswers(app)
        }
    }

    /// Inside a transaction: the transaction fails the same way and, once the backend runs again,
    /// nothing of it is stored (the server rolls back the transaction of a closed connection).
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aTransactionTheServerStopsAnsweringFailsAndCommitsNothing() async throws {
        try await withFaceSocial(Self.silentEnv) { app in
            let router = app.databaseRouter
            let name = "silent-\(UUID().uuidString.prefix(8))"
            let failure = try await Self.interruptedTransaction(
                router, name: name, within: 20, interrupt: { kill($0, SIGSTOP) }, resume: { kill($0, SIGCONT) })
            let error = try #require(failure, "the transaction committed on a stopped backend")
            #expect(error is PostgresStatementTimedOut, "\(error)")
            try await Self.everyPoolAnswers(app)
            // No COMMIT was ever sent, so nothing of it can become visible: the continued backend
            // finds its client gone and rolls back.
            let stored = try await GalleryCollection.query(on: try router.primary).filter(\.$name == name).count()
            #expect(stored == 0, "the interrupted transaction left its row")
        }
    }

    /// Rows reset the clock: a statement that streams for longer than the limit, a row every
    /// quarter second, is not cut (a large gallery load is such a statement). Each row is bigger
    /// than PostgreSQL's 8 KiB send buffer, so it leaves the server as it is produced.
    @Test(.enabled(if: TestPostgres.available, "needs FACESOCIAL_TEST_POSTGRES_URL (scripts/test.sh)"))
    func aLongStatementThatStreamsRowsIsNotCut() async throws {
        try await withFaceSocial(Self.silentEnv) { app in
            let sql = try app.databaseRouter.primary as! any SQLDatabase
            let started = ContinuousClock.now
            let rows = try await sql.raw(
                "SELECT repeat('x', 20000) || pg_sleep(0.25)::text AS pad FROM generate_series(1, 12)"
            ).all()
            #expect(rows.count == 12)
            // Only a sanity check that the statement did outlast the limit (it cannot run faster).
            #expect(ContinuousClock.now - started > .seconds(2))
        }
    }
}
