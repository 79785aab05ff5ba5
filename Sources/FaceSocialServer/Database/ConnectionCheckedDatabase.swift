import FluentKit
import FluentPostgresDriver
import PostgresKit
import SQLKit

/// PostgreSQL work that cannot hang on a connection the server has dropped.
///
/// postgres-nio 1.33 loses a query written to a connection whose channel has finished closing:
/// NIO has torn the pipeline down, the write never reaches the protocol handler, and nothing fails
/// the query. It never finishes, so Fluent's pool never gets the connection back; with one
/// connection per event loop that loop's pool then serves nothing, and after a primary restart
/// the server answered 503 "no database connection became free in time" for minutes
/// (`PrimaryConnectionLossTests` shows the lost query). The race is between the pool handing a
/// connection out (or one statement of a transaction ending) and the next statement's write.
///
/// Here every statement runs on its connection's event loop right after a check that the channel
/// is still open. Closing happens on that same loop and the pipeline is torn down only after the
/// channel is inactive, so an open channel still has its handler, which fails the query properly if
/// the server goes away later; a closed one fails at once with `PostgresConnectionLost`, the
/// connection goes back to the pool, and the pool drops it.
struct ConnectionCheckedDatabase: Database, SQLDatabase {
    /// Fluent's PostgreSQL database: the pool, or one of its connections.
    let inner: any Database
    let inTransaction: Bool

    var context: DatabaseContext { inner.context }
    var logger: Logger { inner.logger }
    var eventLoop: any EventLoop { inner.eventLoop }
    private var sql: any SQLDatabase { inner as! any SQLDatabase }
    var version: (any SQLDatabaseReportedVersion)? { sql.version }
    var dialect: any SQLDialect { sql.dialect }
    var queryLogLevel: Logger.Level? { sql.queryLogLevel }

    /// Runs `work` on one connection, on its event loop, once the connection is known to be open.
    private func onOpenConnection<T: Sendable>(
        _ work: @escaping @Sendable (any Database) -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        inner.withConnection { bound in
            // The same connection as PostgresNIO's type: a connection's withConnection is itself.
            (bound as! any PostgresDatabase).withConnection { connection in
                connection.eventLoop.flatSubmit {
                    guard !connection.isClosed else {
                        return connection.eventLoop.makeFailedFuture(PostgresConnectionLost())
                    }
                    return work(bound)
                }
            }
        }
    }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void)
        -> EventLoopFuture<Void>
    {
        onOpenConnection { $0.execute(query: query, onOutput: onOutput) }
    }

    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        onOpenConnection { $0.execute(schema: schema) }
    }

    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> {
        onOpenConnection { $0.execute(enum: `enum`) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void)
        -> EventLoopFuture<Void>
    {
        onOpenConnection { ($0 as! any SQLDatabase).execute(sql: query, onRow) }
    }

    func withSession<R: Sendable>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R
    {
        try await withConnection { database in
            database.eventLoop.makeFutureWithTask { try await closure(database as! any SQLDatabase) }
        }.get()
    }

    /// As Fluent's: a database bound to one connection reports itself in a transaction.
    func withConnection<T: Sendable>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>)
        -> EventLoopFuture<T>
    {
        inner.withConnection { bound in
            closure(ConnectionCheckedDatabase(inner: bound, inTransaction: bound.inTransaction))
        }
    }

    /// Fluent's BEGIN/COMMIT/ROLLBACK, with each statement checked like any other: a ROLLBACK sent
    /// after the server dropped the connection would otherwise be lost too and hold it for good.
    func transaction<T: Sendable>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>)
        -> EventLoopFuture<T>
    {
        guard !inTransaction else { return closure(self) }
        return inner.withConnection { bound in
            let transaction = ConnectionCheckedDatabase(inner: bound, inTransaction: true)
            return transaction.raw("BEGIN").run().flatMap {
                closure(transaction).flatMap { result in
                    transaction.raw("COMMIT").run().map { result }
                }.flatMapError { error in
                    // The work's error is the one to report, whatever the rollback does.
                    transaction.raw("ROLLBACK").run().recover { _ in }.flatMapThrowing { throw error }
                }
            }
        }
    }
}

/// The connection was already closed when a statement was about to be sent on it.
struct PostgresConnectionLost: Error, CustomStringConvertible {
    var description: String { "the PostgreSQL connection was closed before the statement was sent" }
}

/// Registers a PostgreSQL database whose statements go through `ConnectionCheckedDatabase`.
struct ConnectionCheckedConfiguration: DatabaseConfiguration {
    var inner: any DatabaseConfiguration

    init(_ factory: DatabaseConfigurationFactory) { inner = factory.make() }

    var middleware: [any AnyModelMiddleware] {
        get { inner.middleware }
        set { inner.middleware = newValue }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        Driver(inner: inner.makeDriver(for: databases))
    }

    struct Driver: DatabaseDriver {
        let inner: any DatabaseDriver

        func makeDatabase(with context: DatabaseContext) -> any Database {
            ConnectionCheckedDatabase(inner: inner.makeDatabase(with: context), inTransaction: false)
        }

        func shutdown() { inner.shutdown() }
        func shutdownAsync() async { await inner.shutdownAsync() }
    }
}
