import Foundation
import NIOCore
import NIOPosix

public enum RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    case server(String)
    case timeout
    case connectionClosed
    case invalidURL(String)
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .server(let message): "Redis error: \(message)"
        case .timeout: "Redis did not answer in time"
        case .connectionClosed: "the Redis connection closed"
        case .invalidURL(let url): "not a redis:// URL: \(url)"
        case .unexpectedReply(let what): "unexpected Redis reply: \(what)"
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
        to endpoint: RedisEndpoint, group: any EventLoopGroup, connectTimeout: TimeAmount, commandTimeout: TimeAmount
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
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
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let timeout = channel.eventLoop.scheduleTask(in: commandTimeout) { [channel] in
            promise.fail(RedisError.timeout)
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        // A write to a channel that has already closed never reaches the handler that fails pending
        // commands, so its failure must fail the command here, not after the timeout.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { promise.fail($0) }
        channel.writeAndFlush(RESPRequest(arguments: arguments, promise: promise), promise: written)
        return try await promise.futureResult.get()
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Where Redis is: `redis://[user:password@]host[:port][/db]`.
public struct RedisEndpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int

    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis",
            let host = components.host, !host.isEmpty
        else { throw RedisError.invalidURL(url) }
        self.host = host
        self.port = components.port ?? 6379
        self.username = components.user.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
        self.password = components.password?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard path.isEmpty || Int(path) != nil else { throw RedisError.invalidURL(url) }
        self.database = Int(path) ?? 0
    }
}
