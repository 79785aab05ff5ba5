import Foundation
import NIOCore
import NIOPosix
import NIOSSL

public enum RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    case server(String)
    case timeout
    case connectionClosed
    case invalidURL(String)
    case unexpectedReply(String)
    /// A cluster node that failed moments ago: its slots are skipped until it is retried.
    case nodeUnavailable(String)
    /// A cluster redirected or refused a command more often than the client follows.
    case tooManyRedirections(String)

    public var description: String {
        switch self {
        case .server(let message): "Redis error: \(message)"
        case .timeout: "Redis did not answer in time"
        case .connectionClosed: "the Redis connection closed"
        case .invalidURL(let url): "not a redis:// or rediss:// URL: \(url)"
        case .unexpectedReply(let what): "unexpected Redis reply: \(what)"
        case .nodeUnavailable(let node): "Redis node \(node) failed moments ago"
        case .tooManyRedirections(let what): "Redis Cluster kept redirecting: \(what)"
        }
    }
}

/// A command with the promise its reply completes; replies arrive in command order (RESP is
/// pipelined), so promises wait in a FIFO.
struct RESPRequest {
    let arguments: [[UInt8]]
    let promise: EventLoopPromise<RESPValue>
}

final class RESPResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = [[UInt8]]

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        pending.append(request.promise)
        context.write(wrapOutboundOut(request.arguments), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let promise = pending.popFirst() else { return }
        if case .error(let message) = value {
            promise.fail(RedisError.server(message))
        } else {
            promise.succeed(value)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let promise = pending.popFirst() { promise.fail(error) }
    }
}

/// One TCP connection to Redis.
final class RedisConnection: Sendable {
    let channel: any Channel
    let commandTimeout: TimeAmount

    private init(channel: any Channel, commandTimeout: TimeAmount) {
        self.channel = channel
        self.commandTimeout = commandTimeout
    }

    var isActive: Bool { channel.isActive }

    static func connect(
        to endpoint: RedisEndpoint, tls: NIOSSLContext?, group: any EventLoopGroup, connectTimeout: TimeAmount,
        commandTimeout: TimeAmount
    ) async throws -> RedisConnection {
        // An address is verified against the certificate's IP entries, a name against its DNS ones.
        let serverName = endpoint.hostIsAddress ? nil : endpoint.host
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        MessageToByteHandler(RESPCommandEncoder()),
                        ByteToMessageHandler(RESPDecoder()),
                        RESPResponseHandler(),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        let connection = RedisConnection(channel: channel, commandTimeout: commandTimeout)
        do {
            if let password = endpoint.password {
                _ = try await connection.send(endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if endpoint.database != 0 { _ = try await connection.send(["SELECT", String(endpoint.database)]) }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Sends one command; a reply that does not come within the timeout closes the connection
    /// (later replies would no longer match their commands).
    func send(_ arguments: [String]) async throws -> RESPValue {
        try await send(bytes: arguments.map { Array($0.utf8) })
    }

    func send(bytes arguments: [[UInt8]]) async throws -> RESPValue {
        try await pipeline([arguments]).last!.get()
    }

    /// Sends the commands back to back in one write (ASKING must come right before the command it
    /// allows), and gives each one's reply or error.
    func pipeline(_ commands: [[[UInt8]]]) async throws -> [Result<RESPValue, any Error>] {
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        let timeout = channel.eventLoop.scheduleTask(in: commandTimeout) { [channel] in
            promises.forEach { $0.fail(RedisError.timeout) }
            channel.close(promise: nil)
        }
        promises.last!.futureResult.whenComplete { _ in timeout.cancel() }
        channel.eventLoop.execute { [channel] in
            for (command, promise) in zip(commands, promises) {
                // A write to a channel that has already closed never reaches the handler that fails
                // pending commands, so its failure must fail the command here, not after the timeout.
                let written = channel.eventLoop.makePromise(of: Void.self)
                written.futureResult.whenFailure { promise.fail($0) }
                channel.write(RESPRequest(arguments: command, promise: promise), promise: written)
            }
            channel.flush()
        }
        var results: [Result<RESPValue, any Error>] = []
        for promise in promises {
            do { results.append(.success(try await promise.futureResult.get())) } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Where Redis is: `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS.
public struct RedisEndpoint: Sendable, Equatable, Hashable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    public var tls: Bool

    public init(url: String) throws {
        guard let components = URLComponents(string: url),
            components.scheme == "redis" || components.scheme == "rediss",
            let host = components.host, !host.isEmpty
        else { throw RedisError.invalidURL(Self.redacted(url)) }
        self.host = host
        self.port = components.port ?? 6379
        self.username = components.user.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
        self.password = components.password?.removingPercentEncoding
        self.tls = components.scheme == "rediss"
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard path.isEmpty || Int(path) != nil else { throw RedisError.invalidURL(Self.redacted(url)) }
        self.database = Int(path) ?? 0
    }

    /// The same credentials and transport at another node (a cluster's `MOVED` or slot map names
    /// nodes by address only).
    public func at(host: String, port: Int) -> RedisEndpoint {
        var copy = self
        copy.host = host
        copy.port = port
        return copy
    }

    /// The node it names, as the slot map does.
    public var node: ClusterNode { ClusterNode(host: host, port: port) }

    /// `host:port`, the node's name in metrics, logs and the slot map.
    public var address: String { node.description }

    var hostIsAddress: Bool { IPNetwork(host) != nil }

    /// The seed nodes of `REDIS_CLUSTER_NODES`: `host:port,host:port`, optionally after one
    /// `redis://` or `rediss://` prefix with credentials that every node shares
    /// (`rediss://app:secret@10.0.0.1:6379,10.0.0.2:6379`). A cluster has only database 0.
    public static func clusterSeeds(_ text: String) throws -> [RedisEndpoint] {
        var rest = text.trimmingCharacters(in: .whitespaces)
        var prefix = "redis://"
        if let scheme = rest.range(of: "://") {
            let afterScheme = rest[scheme.upperBound...]
            let firstHostStart = afterScheme.range(of: "@").map { $0.upperBound } ?? afterScheme.startIndex
            prefix = String(rest[..<firstHostStart])
            rest = String(rest[firstHostStart...])
        }
        let entries = rest.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !entries.isEmpty, entries.allSatisfy({ !$0.isEmpty && !$0.contains("/") && !$0.contains("@") }) else {
            throw RedisError.invalidURL(redacted(text))
        }
        return try entries.map { try RedisEndpoint(url: prefix + $0) }
    }

    /// The URL without its password, for error messages and logs.
    static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound < at else {
            return url
        }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at...])
    }
}
