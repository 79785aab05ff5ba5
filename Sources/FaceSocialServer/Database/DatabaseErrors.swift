import AsyncKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Vapor

/// SQLite answers BUSY / LOCKED while another connection holds the write lock. A short write is
/// tried again a few times with a growing pause; what is still busy after that becomes 503
/// `DATABASE_UNAVAILABLE` (see `APIError.databaseUnavailable`), never a 500.
enum SQLiteBusy {
    static func matches(_ error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        switch error.reason {
        case .busy, .locked, .busyTimeout, .busyInRecovery, .busyInSnapshot, .lockedBySharedCache: return true
        default: return false
        }
    }

    static func retrying<T: Sendable>(attempts: Int = 8, _ work: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await work()
            } catch  where matches(error) && attempt < attempts - 1 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(5 * attempt + Int.random(in: 0...5)))
            }
        }
    }
}

extension APIError {
    /// 400 for text PostgreSQL cannot store: U+0000 in a string (SQLSTATE 22021, 22P05). SQLite
    /// stores such text as it is; on PostgreSQL the caller learns it is the input, not the server.
    static func databaseRefusedInput(_ error: any Error) -> APIError? {
        guard let error = error as? PSQLError, error.code == .server,
            let state = error.serverInfo?[.sqlState], state == "22021" || state == "22P05"
        else { return nil }
        return .validation("text fields cannot contain U+0000 (NUL) or bytes that are not UTF-8")
    }

    /// 503 `DATABASE_UNAVAILABLE` (with Retry-After) for errors that mean the database cannot be
    /// reached now: a refused or dropped connection, a pool that cannot hand out one in time, a
    /// server shutting down or in recovery, or a primary that turned read-only. The write was not
    /// confirmed, so the client retries; a retried enrolment of the same image that did commit
    /// answers 409 DUPLICATE_IMAGE, so a retry never doubles a face. Any other database error
    /// stays a 500.
    static func databaseUnavailable(_ error: any Error) -> APIError? {
        let reason: String
        switch error {
        case let error as PSQLError:
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                reason = "the connection to PostgreSQL failed"
            case .server:
                // Class 08 connection exception, 57P admin/crash shutdown or cannot connect now,
                // 25006 read-only transaction (a replica or a demoted primary).
                let state = error.serverInfo?[.sqlState] ?? ""
                guard state.hasPrefix("08") || state.hasPrefix("57P") || state == "25006" else { return nil }
                reason = "PostgreSQL refused the work (SQLSTATE \(state))"
            default:
                return nil
            }
        case is PostgresConnectionLost:
            reason = "the connection to PostgreSQL failed"
        case let error as PostgresStatementTimedOut:
            reason = "PostgreSQL did not answer within \(error.milliseconds) ms"
        case is ConnectionPoolTimeoutError:
            reason = "no database connection became free in time"
        case ConnectionPoolError.shutdown:
            reason = "the database pool is shut down"
        case DatabaseSetupError.timeout:
            reason = "the database did not answer in time"
        case let error where SQLiteBusy.matches(error):
            reason = "SQLite is busy with another write"
        default:
            return nil
        }
        return APIError(
            .serviceUnavailable, "DATABASE_UNAVAILABLE", "the database is unavailable: \(reason); retry shortly",
            details: ["retry_after_seconds": "5"], headers: ["Retry-After": "5"])
    }
}
