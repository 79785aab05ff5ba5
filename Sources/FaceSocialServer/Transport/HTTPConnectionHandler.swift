import Foundation
import NIOCore
import NIOHTTP1
import Vapor

/// The transport's limits (SecurityConfig declares the settings).
struct TransportLimits: Sendable {
    var idleTimeout: TimeAmount
    var headTimeout: TimeAmount
    var bodyTimeout: TimeAmount
    var maxConnections: Int
}

/// One HTTP/1.1 connection: collects each request (within its route's body limit and the head and
/// body deadlines of `ConnectionClock`), hands it to Vapor's responder and writes the answer.
/// Runs on the connection's event loop only.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let application: Application
    private let responder: any Responder
    private let limits: TransportLimits
    private let bodyLimits: RouteBodyLimits
    private let metrics: TransportMetrics
    private let serverName: String?

    private var context: ChannelHandlerContext?
    private var clock = ConnectionClock()
    private var timer: Scheduled<Void>?
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyLimit = 0
    /// The body is past its limit: it is read and dropped, and the answer is 413.
    private var tooLarge = false
    /// An answer that ends the connection was sent (a refusal, a deadline): later input is dropped.
    private var closing = false
    /// The server is shutting down: finish what is in flight, keep nothing alive.
    private var quiescing = false
    private var dates = HTTPDateCache()

    init(
        application: Application, responder: any Responder, limits: TransportLimits, bodyLimits: RouteBodyLimits,
        metrics: TransportMetrics, serverName: String?
    ) {
        self.application = application
        self.responder = responder
        self.limits = limits
        self.bodyLimits = bodyLimits
        self.metrics = metrics
        self.serverName = serverName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { arm(ConnectionClock.initialDeadline) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(ConnectionClock.initialDeadline)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    /// From `RequestBytesWatcher`, ahead of the HTTP decoder: bytes came in.
    func bytesArrived() {
        if let deadline = clock.bytesArrived() { arm(deadline) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            arm(clock.headArrived())
            let limit = bodyLimits.limit(for: head)
            let expectsContinue = head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
            self.head = head
            self.bodyLimit = limit
            self.body = nil
            self.tooLarge = false
            if let length = head.headers.first(name: .contentLength).flatMap(Int.init), length > limit {
                guard !expectsContinue else {
                    // The client holds its body back for this answer: refuse now, nothing to drain.
                    refuse(.bodyTooLarge(limit: limit), version: head.version)
                    return
                }
                tooLarge = true
            } else if expectsContinue {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard head != nil, !tooLarge else { return }
            let received = (body?.readableBytes ?? 0) + chunk.readableBytes
            guard received <= bodyLimit else {
                tooLarge = true
                body = nil
                return
            }
            if body == nil {
                body = chunk  // the common case: the whole body in one read, no copy
            } else {
                let expected = head?.headers.first(name: .contentLength).flatMap(Int.init) ?? received
                body!.reserveCapacity(minimumWritableBytes: max(expected, received) - body!.readableBytes)
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            let body = self.body
            self.head = nil
            self.body = nil
            arm(clock.bodyArrived())
            // A body past its limit is answered once it was read to its end (its deadline still
            // applied), so the client sees the answer and the connection stays usable.
            let refusal = tooLarge ? APIError.bodyTooLarge(limit: bodyLimit) : nil
            answer(head, body: body, refusal: refusal, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if clock.isBetweenRequests, head == nil { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        application.logger.debug("connection closed on error", metadata: ["error": .string("\(error)")])
        context.close(promise: nil)
    }

    // MARK: Answers

    /// Hands the request to Vapor's responder; a `refusal` goes through it too (thrown by
    /// `TransportRefusalMiddleware`), so that answer has the request id, CORS and metrics as well.
    private func answer(
        _ head: HTTPRequestHead, body: ByteBuffer?, refusal: APIError?, context: ChannelHandlerContext
    ) {
        let request = Request(
            application: application, method: head.method, url: .init(path: head.uri), version: head.version,
            headersNoUpdate: head.headers, collectedBody: refusal == nil ? body : nil,
            remoteAddress: context.channel.remoteAddress, logger: application.logger,
            byteBufferAllocator: context.channel.allocator, on: context.eventLoop)
        if let refusal { request.storage[TransportRefusalKey.self] = refusal }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        responder.respond(to: request)
            .hop(to: loop)
            .flatMap { response in response.body.collect(on: loop).map { (response, $0) } }
            .whenComplete { result in
                let handler = bound.value
                switch result {
                case .success(let (response, bytes)):
                    handler.write(response, body: bytes, for: head)
                case .failure(let error):
                    handler.application.logger.error(
                        "an answer could not be written", metadata: ["error": .string("\(error)")])
                    handler.refuse(.from(error), version: head.version)
                }
            }
    }

    private func write(_ response: Response, body: ByteBuffer?, for head: HTTPRequestHead) {
        guard let context, context.channel.isActive else { return }
        let keepAlive = head.isKeepAlive && !quiescing && !closing
        arm(clock.answerStarted())
        send(
            response.status, response.headers, body: head.method == .HEAD ? nil : body,
            length: body?.readableBytes ?? 0, version: head.version, keepAlive: keepAlive, context: context)
    }

    /// An answer of the transport's own (the route never saw the request), after which the
    /// connection closes: a body deadline passed, a body announced too large to a client that
    /// waits for `100 Continue`, an answer that failed.
    private func refuse(_ error: APIError, version: HTTPVersion) {
        guard let context, !closing else { return }
        closing = true
        head = nil
        body = nil
        cancelTimer()
        var headers = error.headers
        let payload = error.envelope(headers: &headers)
        send(
            error.status, headers, body: payload, length: payload.readableBytes, version: version,
            keepAlive: false, context: context)
    }

    /// Writes one answer: its length, date, server name and connection headers set here, a
    /// collected body in one piece; then waits for the next request or ends the connection.
    private func send(
        _ status: HTTPResponseStatus, _ headers: HTTPHeaders, body: ByteBuffer?, length: Int,
        version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext
    ) {
        // 1xx, 204 and 304 carry no body (RFC 9110 §6.4.1), and so no length either.
        let hasBody = status.code >= 200 && status != .noContent && status != .notModified
        var headers = headers
        headers.remove(name: .transferEncoding)  // a streamed body was collected
        if hasBody {
            headers.replaceOrAdd(name: .contentLength, value: String(length))
        } else {
            headers.remove(name: .contentLength)
        }
        headers.replaceOrAdd(name: .date, value: dates.now())
        if let serverName { headers.replaceOrAdd(name: .server, value: serverName) }
        headers.replaceOrAdd(name: .connection, value: keepAlive ? "keep-alive" : "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if hasBody, let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { result in
            let handler = bound.value
            if case .success = result, keepAlive, !handler.quiescing {
                handler.arm(handler.clock.answerWritten())
            } else {
                handler.finish()
            }
        }
    }

    /// Ends the connection once its last answer is out: the output side first, so a client still
    /// sending reads the answer instead of a reset; the idle deadline closes the rest.
    private func finish() {
        guard let context else { return }
        closing = true
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenFailure { _ in context.close(promise: nil) }
        context.close(mode: .output, promise: promise)
        arm(.idle)
    }

    // MARK: Deadlines

    private func arm(_ deadline: ConnectionClock.Deadline) {
        cancelTimer()
        guard let context else { return }
        let amount: TimeAmount
        switch deadline {
        case .none: return
        case .idle: amount = limits.idleTimeout
        case .head: amount = limits.headTimeout
        case .body: amount = limits.bodyTimeout
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: amount) { bound.value.expired(deadline) }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func expired(_ deadline: ConnectionClock.Deadline) {
        timer = nil
        guard let context, context.channel.isActive else { return }
        metrics.expired(deadline)
        if deadline == .body, !closing {
            // The head was read: the client waits for an answer and gets one.
            let refusal: APIError = tooLarge ? .bodyTooLarge(limit: bodyLimit) : .bodyTimeout(limits.bodyTimeout)
            refuse(refusal, version: head?.version ?? .http1_1)
        } else {
            // A silent socket, a head that never completed, a client that stopped reading.
            context.close(promise: nil)
        }
    }
}

/// Sits ahead of the HTTP decoder and tells the connection when bytes arrive, so the head
/// deadline starts at a request's first byte rather than when the decoder has a whole head.
final class RequestBytesWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let connection: HTTPConnectionHandler

    init(connection: HTTPConnectionHandler) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// A connection past the cap: a 503 answer and close, without reading a request (what it would
/// have asked does not change the answer). NIO's response encoder sits before it.
final class ConnectionCapRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = HTTPServerResponsePart

    func channelActive(context: ChannelHandlerContext) {
        let error = APIError.tooManyConnections
        var headers = error.headers
        let payload = error.envelope(headers: &headers)
        headers.replaceOrAdd(name: .contentLength, value: String(payload.readableBytes))
        headers.replaceOrAdd(name: .connection, value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: error.status, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            // What the client still sends is read and dropped until it closes, at most a second.
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// A refusal the transport decided for a request, thrown as the request enters the middleware.
struct TransportRefusalKey: StorageKey {
    typealias Value = APIError
}

struct TransportRefusalMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let refusal = request.storage[TransportRefusalKey.self] { throw refusal }
        return try await next.respond(to: request)
    }
}

extension APIError {
    /// 413 for a body past its route's limit, whether announced or counted while it arrived.
    static func bodyTooLarge(limit: Int) -> APIError {
        .imageTooLarge("the request body exceeds the limit of \(limit) bytes")
    }
    /// 408 when a body did not arrive whole within the body timeout.
    static func bodyTimeout(_ timeout: TimeAmount) -> APIError {
        APIError(
            .requestTimeout, "REQUEST_TIMEOUT",
            "the request body did not arrive within \(timeout.nanoseconds / 1_000_000_000) s")
    }
    /// 503 for a connection past FACESOCIAL_MAX_CONNECTIONS.
    static let tooManyConnections = APIError(
        .serviceUnavailable, "TOO_MANY_CONNECTIONS",
        "the server holds as many connections as it is configured to; retry shortly",
        headers: ["Retry-After": "1"])
}

/// The `Date` header's value, formatted once a second.
struct HTTPDateCache {
    private var second: time_t = -1
    private var value = ""

    mutating func now() -> String {
        var now = time(nil)
        if now != second {
            var parts = tm()
            gmtime_r(&now, &parts)
            var text = [CChar](repeating: 0, count: 40)
            let length = strftime(&text, text.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            value = String(decoding: text[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            second = now
        }
        return value
    }
}
