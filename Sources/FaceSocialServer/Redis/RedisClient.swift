import Foundation
import Logging
import NIOCore
import NIOPosix

/// A small Redis client: a bounded pool of pipelined RESP connections with connect and command
/// timeouts. A failed connection is dropped and replaced on the next command, so a Redis restart
/// heals by itself; callers decide how to degrade when a command fails.
public actor RedisClient {
    public let endpoint: RedisEndpoint
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

    public init(
        url: String, group: any EventLoopGroup, maxConnections: Int = 8,
        connectTimeout: TimeAmount = .milliseconds(500),
        commandTimeout: TimeAmount = .milliseconds(500), logger: Logger = Logger(label: "facesocial.redis")
    ) throws {
        self.endpoint = try RedisEndpoint(url: url)
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
        let connection = try await acquire()
        do {
            let reply = try await connection.send(bytes: arguments)
            release(connection)
            recordSuccess()
            return reply
        } catch let error as RedisError {
            // A server-side error reply leaves the connection usable; anything else does not.
            if case .server = error { release(connection) } else { discard(connection) }
            if case .server = error {} else { recordFailure(error) }
            throw error
        } catch {
            discard(connection)
            recordFailure(error)
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
                        to: endpoint, group: group, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
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
        if lastFailure == nil {
            logger.warning("Redis unavailable; degrading to local state", metadata: ["error": "\(error)"])
        }
        lastFailure = "\(error)"
    }

    private func recordSuccess() {
        if lastFailure != nil { logger.notice("Redis reachable again") }
        lastFailure = nil
    }
}
