import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import Vapor

/// The HTTP/1.1 server in front of Vapor's responder (routes and middleware as usual).
///
/// Vapor's own server (4.122) builds each connection's pipeline privately, so nothing can bound a
/// request head as a whole or count connections before they reach it; this one adds, per
/// connection, the deadlines of `ConnectionClock` and a cap on open connections, and otherwise
/// takes its address, backlog, TLS and server name from `app.http.server.configuration` as
/// Vapor's would. HTTP/2 is left to the proxy in front (deploy/nginx).
public final class FaceSocialHTTPServer: Server, Sendable {
    private struct Running: Sendable {
        let channel: any Channel
        let quiesce: ServerQuiescingHelper
    }

    private let application: Application
    private let limits: TransportLimits
    private let metrics: TransportMetrics
    private let running = NIOLockedValueBox<Running?>(nil)
    private let connections = NIOLockedValueBox(0)
    private let refusals = NIOLockedValueBox(0)

    init(application: Application, limits: TransportLimits, metrics: TransportMetrics) {
        self.application = application
        self.limits = limits
        self.metrics = metrics
    }

    /// The bound address once started (the port chosen when 0 was asked for).
    public var localAddress: SocketAddress? { running.withLockedValue { $0?.channel.localAddress } }

    /// Connections open now, and those refused at the cap since the start.
    public var openConnections: Int { connections.withLockedValue { $0 } }
    public var refusedConnections: Int { refusals.withLockedValue { $0 } }

    public var onShutdown: EventLoopFuture<Void> {
        guard let running = running.withLockedValue({ $0 }) else { fatalError("the server has not started") }
        return running.channel.closeFuture
    }

    @available(*, noasync, message: "use the async start")
    public func start(address: BindAddress?) throws {
        try bind(address).wait()
    }

    public func start(address: BindAddress?) async throws {
        try await bind(address).get()
    }

    @available(*, noasync, message: "use the async shutdown")
    public func shutdown() {
        try? close().wait()
    }

    public func shutdown() async {
        try? await close().get()
    }

    private func bind(_ address: BindAddress?) -> EventLoopFuture<Void> {
        var configuration = application.http.server.configuration
        switch address {
        case .none: break
        case .hostname(let host, let port):
            configuration.address = .hostname(host ?? configuration.hostname, port: port ?? configuration.port)
        case .unixDomainSocket: configuration.address = address!
        }
        let group = application.eventLoopGroup
        let tls: NIOSSLContext?
        do {
            tls = try configuration.tlsConfiguration.map { tlsConfiguration in
                var tlsConfiguration = tlsConfiguration
                tlsConfiguration.applicationProtocols = ["http/1.1"]
                return try NIOSSLContext(configuration: tlsConfiguration)
            }
        } catch {
            return group.any().makeFailedFuture(error)
        }
        let quiesce = ServerQuiescingHelper(group: group)
        let responder = application.responder.current
        let bodyLimits = RouteBodyLimits(application: application)
        let serverName = configuration.serverName
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: Int32(configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: configuration.reuseAddress ? 1 : 0)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initialize(
                        channel, tls: tls, responder: responder, bodyLimits: bodyLimits, serverName: serverName)
                }.flatMapErrorThrowing { [application] error in
                    // NIO closes the connection; without this line nothing would say why.
                    application.logger.error(
                        "a connection could not be set up", metadata: ["error": .string("\(error)")])
                    throw error
                }
            }
            // TCP level: `.socketOption(.tcp_nodelay)` would set SOL_SOCKET option 1, SO_DEBUG, which needs
            // CAP_NET_ADMIN (a container without it closed every connection at accept).
            .childChannelOption(.tcpOption(.tcp_nodelay), value: configuration.tcpNoDelay ? 1 : 0)
            .childChannelOption(.socketOption(.so_reuseaddr), value: configuration.reuseAddress ? 1 : 0)
        let bound: EventLoopFuture<any Channel>
        switch configuration.address {
        case .hostname: bound = bootstrap.bind(host: configuration.hostname, port: configuration.port)
        case .unixDomainSocket(let path): bound = bootstrap.bind(unixDomainSocketPath: path)
        }
        return bound.flatMapErrorThrowing { error in
            quiesce.initiateShutdown(promise: nil)
            throw error
        }.map { [self] channel in
            running.withLockedValue {
                precondition($0 == nil, "the server was started twice")
                $0 = Running(channel: channel, quiesce: quiesce)
            }
            let scheme = tls == nil ? "http" : "https"
            let shown = channel.localAddress.map { "\($0.ipAddress ?? $0.pathname ?? "?"):\($0.port ?? 0)" } ?? "?"
            application.logger.notice(
                "Server started on \(scheme)://\(shown)",
                metadata: [
                    "max_connections": .stringConvertible(limits.maxConnections),
                    "head_timeout_s": .stringConvertible(limits.headTimeout.nanoseconds / 1_000_000_000),
                ])
        }
    }

    /// Called on the new connection's event loop.
    private func initialize(
        _ channel: any Channel, tls: NIOSSLContext?, responder: any Responder, bodyLimits: RouteBodyLimits,
        serverName: String?
    ) throws {
        let admitted = connections.withLockedValue { open in
            guard open < limits.maxConnections else { return false }
            open += 1
            return true
        }
        guard admitted else {
            refusals.withLockedValue { $0 += 1 }
            metrics.refused.increment()
            // Over TLS a plain answer would be noise; the client sees the connection close.
            if tls == nil {
                try channel.pipeline.syncOperations.addHandlers([HTTPResponseEncoder(), ConnectionCapRefusal()])
            } else {
                channel.close(promise: nil)
            }
            return
        }
        metrics.open.increment()
        channel.closeFuture.whenComplete { [connections, metrics] _ in
            connections.withLockedValue { $0 -= 1 }
            metrics.open.decrement()
        }
        let handler = HTTPConnectionHandler(
            application: application, responder: responder, limits: limits, bodyLimits: bodyLimits,
            metrics: metrics, serverName: serverName)
        let pipeline = channel.pipeline.syncOperations
        if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
        try pipeline.addHandler(RequestBytesWatcher(connection: handler))
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try pipeline.addHandler(handler)
    }

    /// Stops accepting, lets each connection finish the request it has (keep-alives close at
    /// once), and waits for them up to the configured shutdown timeout.
    private func close() -> EventLoopFuture<Void> {
        guard let running = running.withLockedValue({ $0 }) else {
            return application.eventLoopGroup.any().makeSucceededVoidFuture()
        }
        let loop = running.channel.eventLoop
        let promise = loop.makePromise(of: Void.self)
        let timeout = application.http.server.configuration.shutdownTimeout
        let deadline = loop.scheduleTask(in: timeout) {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
        running.quiesce.initiateShutdown(promise: promise)
        return promise.futureResult.always { [self] result in
            deadline.cancel()
            if case .failure = result {
                application.logger.error("the server's connections did not finish within \(timeout)")
            }
            self.running.withLockedValue { $0 = nil }
        }
    }
}

/// Each route's body limit, looked up when a request head arrives: the route's declared
/// `maxBodyBytes`, else `app.routes.defaultMaxBodySize`; a path no route takes gets the default.
/// Unchecked: the router is filled in `init` and only read afterwards (as Vapor's own responder
/// uses it), from every event loop.
final class RouteBodyLimits: @unchecked Sendable {
    private let router: TrieRouter<Int>
    private let defaultLimit: Int

    init(application: Application) {
        defaultLimit = application.routes.defaultMaxBodySize.value
        router = TrieRouter(Int.self, options: application.routes.caseInsensitive ? [.caseInsensitive] : [])
        for route in application.routes.all {
            router.register(
                route.maxBodyBytes ?? defaultLimit, at: [.constant(route.method.rawValue)] + route.path)
        }
    }

    func limit(for head: HTTPRequestHead) -> Int {
        let path = head.uri.prefix { $0 != "?" && $0 != "#" }.split(separator: "/").map(String.init)
        var parameters = Parameters()
        return router.route(path: [head.method.rawValue] + path, parameters: &parameters) ?? defaultLimit
    }
}

extension Route {
    private static let maxBodyBytesKey = AnySendableHashable("facesocial.max_body_bytes")

    /// A body limit above `app.routes.defaultMaxBodySize` for this route (the batch uploads).
    var maxBodyBytes: Int? {
        get { userInfo[Self.maxBodyBytesKey] as? Int }
        set { userInfo[Self.maxBodyBytesKey] = newValue }
    }

    @discardableResult
    func allowingBody(upTo bytes: Int) -> Route {
        maxBodyBytes = bytes
        return self
    }
}
