import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// A small Redis client: a bounded pool of pipelined RESP connections with connect and command
/// timeouts. A failed connection is dropped and replaced on the next command, so a Redis restart
/// heals by itself; callers decide how to degrade when a command fails.
public actor RedisClient: RedisCommands {
    public let endpoint: RedisEndpoint
    private let tls: NIOSSLContext?
    private let metrics: RedisMetrics?
    private let group: any EventLoopGroup
    private let maxConnections: Int
    private let connectTimeout: TimeAmount
    private let commandTimeout: TimeAmount
    private var idle: [RedisConnection] = []
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let logger: Logger
    /// The outcome of the latest command or connection attempt, for readiness.
    public private(set) var lastFailure: String?
    private var scripts: [String: String] = [:]
    /// A cluster's node clients leave outage logging to the cluster client, which knows the slots.
    private let quiet: Bool

    public init(
        url: String, group: any EventLoopGroup, maxConnections: Int = 8,
        connectTimeout: TimeAmount = .milliseconds(500),
        commandTimeout: TimeAmount = .milliseconds(500), logger: Logger = Logger(label: "facesocial.redis")
    ) throws {
        let endpoint = try RedisEndpoint(url: url)
        self.init(
            endpoint: endpoint, tls: try endpoint.tls ? RedisTLS.context(caFile: nil) : nil, group: group,
            maxConnections: maxConnections, connectTimeout: connectTimeout, commandTimeout: commandTimeout,
            metrics: nil, logger: logger)
    }

    public init(
        endpoint: RedisEndpoint, tls: NIOSSLContext?, group: any EventLoopGroup, maxConnections: Int = 8,
        connectTimeout: TimeAmount = .milliseconds(500), commandTimeout: TimeAmount = .milliseconds(500),
        metrics: RedisMetrics?, logger: Logger = Logger(label: "facesocial.redis"), quiet: Bool = false
    ) {
        self.endpoint = endpoint
        self.tls = tls
        self.metrics = metrics
        self.quiet = quiet
        self.group = group
        self.maxConnections = max(1, maxConnections)
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    public var isHealthy: Bool { lastFailure == nil }

    /// Runs one command.
    public func send(_ arguments: [String]) async throws -> RESPValue {
        try await send(bytes: arguments.map { Array($0.utf8) })
    }

    public func send(bytes arguments: [[UInt8]]) async throws -> RESPValue {
        try await run([arguments])
    }

    /// The key's slot does not matter to a single server.
    public func send(bytes arguments: [[UInt8]], key: String?) async throws -> RESPValue {
        try await run([arguments])
    }

    /// `ASKING` and then the command on the same connection: a cluster's answer to `ASK`.
    func sendAsking(bytes arguments: [[UInt8]]) async throws -> RESPValue {
        try await run([[Array("ASKING".utf8)], arguments])
    }

    /// Sends the commands on one connection and answers the last one's reply.
    private func run(_ commands: [[[UInt8]]]) async throws -> RESPValue {
        let started = ContinuousClock.now
        var failure: (any Error)?
        defer { metrics?.command(node: endpoint.address, duration: ContinuousClock.now - started, error: failure) }
        let connection: RedisConnection
        do {
            connection = try await acquire()
        } catch {
            failure = error
            throw error
        }
        do {
            let reply = try await connection.pipeline(commands).last!.get()
            release(connection)
            recordSuccess()
            return reply
        } catch {
            failure = error
            // A server-side error reply leaves the connection usable; anything else does not.
            if case RedisError.server = error {
                release(connection)
            } else {
                discard(connection)
                recordFailure(error)
            }
            throw error
        }
    }

    /// Runs a Lua script atomically, by SHA after the first call (EVALSHA, loading it on NOSCRIPT).
    public func eval(_ script: String, keys: [String], arguments: [String]) async throws -> RESPValue {
        let tail = [String(keys.count)] + keys + arguments
        if let sha = scripts[script] {
            do {
                return try await send(["EVALSHA", sha] + tail)
            } catch RedisError.server(let message) where message.hasPrefix("NOSCRIPT") {
                scripts[script] = nil
            }
        }
        let loaded = try await send(["SCRIPT", "LOAD", script])
        guard let sha = loaded.string else { throw RedisError.unexpectedReply("SCRIPT LOAD") }
        scripts[script] = sha
        return try await send(["EVALSHA", sha] + tail)
    }

    public func ping() async -> Bool {
        (try? await send(["PING"]))?.string == "PONG"
    }

    public func probe() async -> String? {
        await ping() ? nil : (lastFailure ?? "no PONG")
    }

    public func keys(matching pattern: String) async throws -> [String] {
        var cursor = "0"
        var found: [String] = []
        repeat {
            let reply = try await send(["SCAN", cursor, "MATCH", pattern, "COUNT", "500"])
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            found += parts[1].array?.compactMap(\.string) ?? []
        } while cursor != "0"
        return found
    }

    public nonisolated var isCluster: Bool { false }

    public func evictedKeys() async -> [String: Int] {
        guard let value = (try? await send(["INFO", "stats"]))?.infoField("evicted_keys").flatMap({ Int($0) }) else {
            return [:]
        }
        return [endpoint.address: value]
    }

    public func shutdown() {
        idle.forEach { $0.close() }
        idle.removeAll()
    }

    private func acquire() async throws -> RedisConnection {
        while true {
            while let connection = idle.popLast() {
                if connection.isActive { return connection }
                open -= 1
            }
            if open < maxConnections {
                open += 1
                do {
                    return try await RedisConnection.connect(
                        to: endpoint, tls: tls, group: group, connectTimeout: connectTimeout,
                        commandTimeout: commandTimeout)
                } catch {
                    open -= 1
                    wakeOne()
                    recordFailure(error)
                    throw error
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func release(_ connection: RedisConnection) {
        if connection.isActive { idle.append(connection) } else { open -= 1 }
        wakeOne()
    }

    private func discard(_ connection: RedisConnection) {
        connection.close()
        open -= 1
        wakeOne()
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    private func recordFailure(_ error: any Error) {
        if lastFailure == nil, !quiet {
            logger.warning("Redis unavailable; degrading to local state", metadata: ["error": "\(error)"])
        }
        lastFailure = "\(error)"
    }

    private func recordSuccess() {
        if lastFailure != nil, !quiet { logger.notice("Redis reachable again") }
        lastFailure = nil
    }
}
