import FaceKit
import Foundation
import Synchronization
import Vapor

/// Per-request facts the envelope and headers need: the request id, the start time and the models
/// that served it.
final class RequestContext: Sendable {
    let requestID: String
    let started = ContinuousClock.now
    // Batch items run concurrently and each records the models it used.
    private let usedModels = Mutex<[String]>([])
    private let modelTimes = Mutex<[String: Double]>([:])

    init(requestID: String) { self.requestID = requestID }

    var models: [String] { usedModels.withLock { $0 } }

    /// Milliseconds spent in each model's stage of this request (pre- and post-processing
    /// included, summed over its faces; faces run in parallel, so the sum can exceed the wall time).
    var modelMilliseconds: [String: Double] { modelTimes.withLock { $0 } }

    var elapsedMilliseconds: Double { (ContinuousClock.now - started).milliseconds }

    func used(_ model: String, milliseconds: Double? = nil) {
        usedModels.withLock { models in
            if !models.contains(model) { models.append(model) }
        }
        if let milliseconds { modelTimes.withLock { $0[model, default: 0] += milliseconds } }
    }
}

struct RequestContextKey: StorageKey {
    typealias Value = RequestContext
}

extension Request {
    var context: RequestContext {
        if let context = storage[RequestContextKey.self] { return context }
        let context = RequestContext(requestID: id)
        storage[RequestContextKey.self] = context
        return context
    }
}

/// Assigns the request id (echoing a well-formed `X-Request-ID`), puts it on every log line of the
/// request, and adds `X-Request-ID`, `X-Processing-Time` and `X-Model-Used` to every response.
struct RequestContextMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let incoming = request.headers.first(name: "X-Request-ID")
        let requestID = incoming.flatMap(Self.acceptable) ?? UUID().uuidString.lowercased()
        let context = RequestContext(requestID: requestID)
        request.storage[RequestContextKey.self] = context
        // One id per log line: ours replaces Vapor's own `request-id`.
        request.logger[metadataKey: "request-id"] = nil
        request.logger[metadataKey: "request_id"] = .string(requestID)
        let response = try await next.respond(to: request)
        response.headers.replaceOrAdd(name: "X-Request-ID", value: requestID)
        response.headers.replaceOrAdd(
            name: "X-Processing-Time", value: String(format: "%.1fms", context.elapsedMilliseconds))
        if !context.models.isEmpty {
            response.headers.replaceOrAdd(name: "X-Model-Used", value: context.models.joined(separator: ","))
        }
        request.logger.info(
            "\(request.method) \(request.url.path) -> \(response.status.code)",
            metadata: ["ms": .string(String(format: "%.1f", context.elapsedMilliseconds))])
        return response
    }

    /// Client ids are echoed only when short and made of safe characters (they end up in logs).
    static func acceptable(_ value: String) -> String? {
        guard (1...128).contains(value.count),
            value.unicodeScalars.allSatisfy({
                CharacterSet.alphanumerics.contains($0) || "-_.:".unicodeScalars.contains($0)
            }),
            value.allSatisfy(\.isASCII)
        else { return nil }
        return value
    }
}

/// The success envelope: `{ "data": …, "meta": { "request_id", "processing_ms", "models" } }`.
struct Envelope<T: Content>: Content {
    struct Meta: Content {
        let requestID: String
        let processingMs: Double
        let models: [String]
        /// Per model of `models`, the milliseconds its stage took (RequestContext.modelMilliseconds);
        /// empty when the answer came from the result cache.
        let modelMs: [String: Double]
    }
    let data: T
    let meta: Meta
}

extension Request {
    /// Wraps `data` in the success envelope.
    func envelope<T: Content>(_ data: T) -> Envelope<T> {
        let context = self.context
        let ms = (context.elapsedMilliseconds * 10).rounded() / 10
        let perModel = context.modelMilliseconds.mapValues { ($0 * 10).rounded() / 10 }
        return Envelope(
            data: data,
            meta: .init(requestID: context.requestID, processingMs: ms, models: context.models, modelMs: perModel))
    }
}
