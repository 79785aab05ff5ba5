import FluentKit
import FluentPostgresDriver
import PostgresKit
import SQLKit
import Synchronization

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
///
/// A server that is there but silent (frozen, or cut off without a reset) is the other way a
/// statement never ends: each statement is watched by a `ServerSilenceWatch` as well.
struct ConnectionCheckedDatabase: Database, SQLDatabase {
    /// Fluent's PostgreSQL database: the pool, or one of its connections.
    let inner: any Database
    let inTransaction: Bool
    /// The longest a statement may hear nothing from the server (nil: no limit).
    let silenceLimit: TimeAmount?

    var context: DatabaseContext { inner.context }
    var logger: Logger { inner.logger }
    var eventLoop: any EventLoop { inner.eventLoop }
    private var sql: any SQLDatabase { inner as! any SQLDatabase }
    var version: (any SQLDatabaseReportedVersion)? { sql.version }
    var dialect: any SQLDialect { sql.dialect }
    var queryLogLevel: Logger.Level? { sql.queryLogLevel }

    /// Runs `work` on one connection, on its event loop, once the connection is known to be open,
    /// watched for the server's silence unless `watched` is false.
    private func onOpenConnection<T: Sendable>(
        watched: Bool = true,
        _ work: @escaping @Sendable (any Database, ServerSilenceWatch?) -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        let limit = watched ? silenceLimit : nil
        return inner.withConnection { bound in
            // The same connection as PostgresNIO's type: a connection's withConnection is itself.
            (bound as! any PostgresDatabase).withConnection { connection in
                connection.eventLoop.flatSubmit {
                    guard !connection.isClosed else {
                        return connection.eventLoop.makeFailedFuture(PostgresConnectionLost())
                    }
                    guard let limit else { return work(bound, nil) }
                    let watch = ServerSilenceWatch(limit: limit)
                    return watch.guarding(work(bound, watch), on: connection)
                }
            }
        }
    }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void)
        -> EventLoopFuture<Void>
    {
        onOpenConnection { database, watch in
            database.execute(query: query) { output in
                watch?.heard()
                onOutput(output)
            }
        }
    }

    // Schema changes are not watched: an index build on a large table may rightly compute in
    // silence for longer than any request should wait, and they run at start or by command.
    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        onOpenConnection(watched: false) { database, _ in database.execute(schema: schema) }
    }

    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> {
        onOpenConnection(watched: false) { database, _ in database.execute(enum: `enum`) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void)
        -> EventLoopFuture<Void>
    {
        onOpenConnection { database, watch in
            (database as! any SQLDatabase).execute(sql: query) { row in
                watch?.heard()
                onRow(row)
            }
        }
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
            closure(
                ConnectionCheckedDatabase(
                    inner: bound, inTransaction: bound.inTransaction, silenceLimit: silenceLimit))
        }
    }

    /// Fluent's BEGIN/COMMIT/ROLLBACK, with each statement checked like any other: a ROLLBACK sent
    /// after the server dropped the connection would otherwise be lost too and hold it for good.
    func transaction<T: Sendable>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>)
        -> EventLoopFuture<T>
    {
        guard !inTransaction else { return closure(self) }
        return inner.withConnection { bound in
            let transaction = ConnectionCheckedDatabase(inner: bound, inTransaction: true, silenceLimit: silenceLimit)
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

/// Fails one statement, and closes its connection, once the server has sent nothing for `limit`.
///
/// A frozen server (a stopped process, a stalled disk, a paused VM) or one cut off without a
/// reset keeps the TCP connection up, so the statement would hold its pooled connection for as
/// long as that lasts, and requests would queue behind it. Rows reset the clock, so a long load
/// that streams is not cut; a statement that computes in silence for longer than `limit` is.
/// Closing the connection fails the query inside postgres-nio too, and the pool drops it.
final class ServerSilenceWatch: Sendable {
    let limit: TimeAmount
    /// When the server was last heard from, in NIODeadline's uptime nanoseconds (rows arrive on
    /// the connection's event loop; the atomic keeps this free of that assumption).
    private let lastHeard: Atomic<Int64>

    init(limit: TimeAmount) {
        self.limit = limit
        self.lastHeard = Atomic(Int64(NIODeadline.now().uptimeNanoseconds))
    }

    func heard() { lastHeard.store(Int64(NIODeadline.now().uptimeNanoseconds), ordering: .relaxed) }

    private var quietUntil: NIODeadline {
        .uptimeNanoseconds(UInt64(lastHeard.load(ordering: .relaxed))) + limit
    }

    /// `work`'s result, or `PostgresStatementTimedOut` once the server has been silent too long.
    /// Called on the connection's event loop.
    func guarding<T: Sendable>(_ work: EventLoopFuture<T>, on connection: PostgresConnection) -> EventLoopFuture<T> {
        let loop = connection.eventLoop
        let promise = loop.makePromise(of: T.self)
        let done = NIOLoopBoundBox(false, eventLoop: loop)
        let timer = NIOLoopBoundBox<Scheduled<Void>?>(nil, eventLoop: loop)
        @Sendable func check() {
            guard !done.value else { return }
            let until = quietUntil
            if until > .now() {
                timer.value = loop.scheduleTask(deadline: until) { check() }
                return
            }
            done.value = true
            // Closed before the failure is reported, so the pool finds it closed and drops it.
            connection.close().whenComplete { _ in }
            promise.fail(PostgresStatementTimedOut(limit: limit))
        }
        timer.value = loop.scheduleTask(deadline: quietUntil) { check() }
        work.hop(to: loop).whenComplete { result in
            guard !done.value else { return }
            done.value = true
            timer.value?.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}

/// The server sent nothing for `limit` during a statement; its connection was closed.
struct PostgresStatementTimedOut: Error, CustomStringConvertible {
    let limit: TimeAmount
    var milliseconds: Int64 { limit.nanoseconds / 1_000_000 }
    var description: String {
        "PostgreSQL sent nothing for \(milliseconds) ms during a statement; its connection was closed"
    }
}

/// Registers a PostgreSQL database whose statements go through `ConnectionCheckedDatabase`.
struct ConnectionCheckedConfiguration: DatabaseConfiguration {
    var inner: any DatabaseConfiguration
    var silenceLimit: TimeAmount?

    /// `silenceLimit`: see `ServerSilenceWatch` (nil: statements may wait forever).
    init(_ factory: DatabaseConfigurationFactory, silenceLimit: TimeAmount?) {
        inner = factory.make()
        self.silenceLimit = silenceLimit
    }

    var middleware: [any AnyModelMiddleware] {
        get { inner.middleware }
        set { inner.middleware = newValue }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        Driver(inner: inner.makeDriver(for: databases), silenceLimit: silenceLimit)
    }

    struct Driver: DatabaseDriver {
        let inner: any DatabaseDriver
        let silenceLimit: TimeAmount?

        func makeDatabase(with context: DatabaseContext) -> any Database {
            ConnectionCheckedDatabase(
                inner: inner.makeDatabase(with: context), inTransaction: false, silenceLimit: silenceLimit)
        }

        func shutdown() { inner.shutdown() }
        func shutdownAsync() async { await inner.shutdownAsync() }
    }
}
