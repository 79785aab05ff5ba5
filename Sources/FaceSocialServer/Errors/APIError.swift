import FaceKit
import ModelRuntime
import Vapor

/// An error the API reports with a stable code. Every failure a client can see becomes one of
/// these, rendered as `{ "error": { "code", "message", "details" } }`.
public struct APIError: Error, Sendable {
    public let status: HTTPResponseStatus
    public let code: String
    public let message: String
    public var details: [String: String]
    public var headers: HTTPHeaders

    public init(
        _ status: HTTPResponseStatus, _ code: String, _ message: String, details: [String: String] = [:],
        headers: HTTPHeaders = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
    }

    /// 429 `RATE_LIMIT_EXCEEDED` with Retry-After, for sign-in throttling.
    static func tooManyAttempts(_ message: String, retryAfter seconds: Int) -> APIError {
        APIError(
            .tooManyRequests, "RATE_LIMIT_EXCEEDED", message,
            details: ["scope": "login", "retry_after_seconds": String(seconds)],
            headers: ["Retry-After": String(seconds)])
    }
    public static func validation(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, "VALIDATION_FAILED", message, details: field.map { ["field": $0] } ?? [:])
    }
    public static func invalidImage(_ message: String) -> APIError {
        APIError(.unprocessableEntity, "INVALID_IMAGE_FORMAT", message)
    }
    public static func imageTooLarge(_ message: String) -> APIError {
        APIError(.payloadTooLarge, "IMAGE_TOO_LARGE", message)
    }
    public static func noFace(_ message: String = "no face was detected in the image") -> APIError {
        APIError(.unprocessableEntity, "NO_FACE_DETECTED", message)
    }
    /// No face passed the enrolment's quality filter: 422 with each refused face's problems
    /// (`details.reasons` the codes, `details.problems` each with its value and limit).
    static func lowQuality(_ faces: [[QualityProblem]], filter: QualityFilter) -> APIError {
        let problems = faces.flatMap { $0 }
        let codes = problems.map(\.code.rawValue).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let described = problems.map {
            "\($0.code.rawValue) (\($0.measure) \(String(format: "%g", $0.value)), limit "
                + "\(String(format: "%g", $0.threshold)))"
        }
        return APIError(
            .unprocessableEntity, "FACE_QUALITY_TOO_LOW",
            "no face passed quality_filter=\(filter.rawValue): \(described.joined(separator: "; "))",
            details: ["reasons": codes.joined(separator: ","), "quality_filter": filter.rawValue])
    }
    public static func modelUnavailable(_ message: String, model: String? = nil) -> APIError {
        APIError(.serviceUnavailable, "MODEL_UNAVAILABLE", message, details: model.map { ["model": $0] } ?? [:])
    }
    /// A model under a restricted licence that this server has not been opted into.
    public static func licenceNotAccepted(model: String, optIn: String, message: String, field: String? = nil)
        -> APIError
    {
        var details = ["model": model, "opt_in": optIn]
        if let field { details["field"] = field }
        return APIError(.conflict, "MODEL_LICENCE_NOT_ACCEPTED", message, details: details)
    }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, "NOT_FOUND", message) }

    /// Maps any error raised while handling a request to its API form.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as ImageError:
            switch error {
            case .tooLarge(let message): return .imageTooLarge(message)
            case .invalidFormat(let message): return .invalidImage(message)
            }
        case let error as ModelRegistryError:
            switch error {
            case .unknownModel(let id): return .modelUnavailable("no model \(id) is configured", model: id)
            case .unavailable(let id, let reason): return .modelUnavailable(reason, model: id)
            case .insufficientMemory(let id, let needed, _):
                return APIError(
                    .serviceUnavailable, "INSUFFICIENT_MEMORY", error.description,
                    details: ["model": id, "needed_bytes": String(needed)])
            case .unknownTarget(let target):
                return .validation("no device or pool \"\(target.prefix(60))\"", field: "device")
            case .pinned(let id):
                return APIError(.conflict, "CONFLICT", error.description, details: ["model": id])
            }
        case let error as ModelStoreError:
            if case .licenceNotAccepted(let id, _, let optIn) = error {
                return .licenceNotAccepted(model: id, optIn: optIn, message: error.description)
            }
            return .modelUnavailable(error.description)
        case let error as AdmissionError:
            // Retry-After tells well-behaved clients when a slot is likely free.
            return APIError(
                .serviceUnavailable, "QUEUE_FULL", error.description,
                details: ["model": error.model, "retry_after_seconds": String(error.retryAfterSeconds)],
                headers: ["Retry-After": String(error.retryAfterSeconds)])
        case let error as DecodingError:
            return .validation("malformed request: \(Self.describe(error))")
        case let abort as any AbortError:
            switch abort.status {
            case .payloadTooLarge: return .imageTooLarge("the request body exceeds the configured limit")
            case .notFound: return .notFound("no route for this path")
            case .methodNotAllowed:
                return APIError(.methodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed on this path")
            case .unsupportedMediaType: return .validation("unsupported content type: \(abort.reason)")
            case .unauthorized: return APIError(.unauthorized, "UNAUTHORIZED", abort.reason)
            case .forbidden: return APIError(.forbidden, "FORBIDDEN", abort.reason)
            case .badRequest, .unprocessableEntity: return .validation(abort.reason)
            default:
                if (400..<500).contains(abort.status.code) { return .validation(abort.reason) }
                return APIError(abort.status, "INTERNAL_ERROR", abort.reason)
            }
        default:
            if let unavailable = databaseUnavailable(error) { return unavailable }
            if let refused = databaseRefusedInput(error) { return refused }
            return APIError(.internalServerError, "INTERNAL_ERROR", "the server could not complete the request")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        // Coding paths hold property names; a client sent (and the document names) their keys.
        func keys(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map(String.init) ?? APIJSON.key($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return keys(context.codingPath + [key]) + ": is required"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let path = keys(context.codingPath)
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

struct ErrorBody: Content {
    struct Inner: Content {
        let code: String
        let message: String
        let details: [String: String]
    }
    let error: Inner
}

extension APIError {
    /// The error envelope as JSON, with its content type added to `headers`: the one rendering
    /// of an error, for the error middleware and the transport's own answers alike.
    func envelope(headers: inout HTTPHeaders) -> ByteBuffer {
        var buffer = ByteBuffer()
        let body = ErrorBody(error: .init(code: code, message: message, details: details))
        // Encoding four strings cannot fail; an empty body would still carry the status.
        try? ContentConfiguration.global.requireEncoder(for: .json).encode(body, to: &buffer, headers: &headers)
        return buffer
    }
}

/// Renders every thrown error as the error envelope, and logs server-side failures.
struct APIErrorMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status.code >= 500 {
                request.logger.error(
                    "request failed", metadata: ["code": .string(apiError.code), "error": .string("\(error)")])
            } else {
                request.logger.info(
                    "request refused", metadata: ["code": .string(apiError.code), "reason": .string(apiError.message)])
            }
            var headers = apiError.headers
            let body = apiError.envelope(headers: &headers)
            return Response(status: apiError.status, headers: headers, body: .init(buffer: body))
        }
    }
}
