import Fluent
import Foundation
import Vapor

/// The first answer to a request sent with an `Idempotency-Key`, kept so a retry gets it again
/// instead of doing the work twice. Only successful answers are kept (face and subject ids,
/// quality figures: never an image or an embedding).
final class IdempotencyRecord: Model, @unchecked Sendable {
    static let schema = "idempotency_keys"
    @ID(key: .id) var id: UUID?
    /// SHA-256 of the caller, the route and the key: the key itself is not stored.
    @Field(key: "key_hash") var keyHash: String
    /// SHA-256 of the request (query and body), so the same key with another request is refused.
    @Field(key: "request_sha256") var requestSHA256: String
    /// Nil while the first request runs.
    @OptionalField(key: "status") var status: Int?
    @OptionalField(key: "body") var body: Data?
    @Field(key: "created_at") var createdAt: Date

    init() {}
    init(keyHash: String, requestSHA256: String, createdAt: Date) {
        self.keyHash = keyHash
        self.requestSHA256 = requestSHA256
        self.createdAt = createdAt
    }
}

struct CreateIdempotencyKeys: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(IdempotencyRecord.schema)
            .id()
            .field("key_hash", .string, .required)
            .field("request_sha256", .string, .required)
            .field("status", .int)
            .field("body", .data)
            .field("created_at", .datetime, .required)
            .unique(on: "key_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(IdempotencyRecord.schema).delete()
    }
}

/// `Idempotency-Key` on the routes that store faces (enrol, batch enrol), as payment APIs use it:
/// a retry with the same key and the same request answers the first answer again (with
/// `Idempotent-Replayed: true`) instead of enrolling twice; the same key with another request is a
/// 422 `IDEMPOTENCY_KEY_REUSED`; a retry while the first still runs is a 409
/// `IDEMPOTENCY_IN_PROGRESS`. The record lives in the database, so every instance sees it; a
/// failed first request leaves none, so its retry runs. Keys are kept 24 hours.
struct IdempotentRequests: Sendable {
    static let header = "Idempotency-Key"
    static let replayedHeader = "Idempotent-Replayed"
    /// How long a key is remembered.
    static let keepFor: TimeInterval = 24 * 3600
    /// A first request still marked running after this long was lost with its instance: a retry
    /// may take its place (longer than any enrolment can run: the body and queue timeouts).
    static let runningFor: TimeInterval = 300

    let router: DatabaseRouter

    /// Runs `work` once per key: without the header, just runs it.
    func respond(
        to req: Request, scope: String, requestSHA256: String, _ work: () async throws -> Response
    ) async throws -> Response {
        guard let key = req.headers.first(name: Self.header) else { return try await work() }
        guard (1...255).contains(key.utf8.count), key.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) })
        else {
            throw APIError.validation(
                "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces", field: Self.header)
        }
        let principal = req.principal
        let keyHash = Secrets.sha256Hex("\(principal.kind.rawValue):\(principal.id)\n\(scope)\n\(key)")
        let db = try router.primary
        let now = Date()
        if let existing = try await IdempotencyRecord.query(on: db).filter(\.$keyHash == keyHash).first() {
            if now.timeIntervalSince(existing.createdAt) > Self.keepFor
                || (existing.status == nil && now.timeIntervalSince(existing.createdAt) > Self.runningFor)
            {
                try await existing.delete(on: db)
            } else {
                return try Self.answer(existing, requestSHA256: requestSHA256)
            }
        }
        let record = IdempotencyRecord(keyHash: keyHash, requestSHA256: requestSHA256, createdAt: now)
        do {
            try await record.create(on: db)
        } catch {
            // Another request with this key got in first (the unique key): answer as for it.
            guard let winner = try await IdempotencyRecord.query(on: db).filter(\.$keyHash == keyHash).first() else {
                throw error
            }
            return try Self.answer(winner, requestSHA256: requestSHA256)
        }
        let response: Response
        do {
            response = try await work()
        } catch {
            try? await record.delete(on: db)
            throw error
        }
        guard (200..<300).contains(response.status.code), let buffer = response.body.buffer else {
            try? await record.delete(on: db)
            return response
        }
        record.status = Int(response.status.code)
        record.body = Data(buffer.readableBytesView)
        try await record.update(on: db)
        return response
    }

    /// The kept answer for a retry, or why there is none.
    private static func answer(_ record: IdempotencyRecord, requestSHA256: String) throws -> Response {
        guard record.requestSHA256 == requestSHA256 else {
            throw APIError(
                .unprocessableEntity, "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with another request; send a new key for a new request",
                details: ["field": header])
        }
        guard let status = record.status, let body = record.body else {
            throw APIError(
                .conflict, "IDEMPOTENCY_IN_PROGRESS", "the first request with this Idempotency-Key is still running",
                details: ["field": header], headers: ["Retry-After": "2"])
        }
        let response = Response(status: HTTPResponseStatus(statusCode: status), body: .init(data: body))
        response.headers.contentType = .json
        response.headers.replaceOrAdd(name: replayedHeader, value: "true")
        return response
    }

    /// Deletes the answers older than `keepFor` (with the audit purge, at start and periodically).
    static func purge(on db: any Database, now: Date = Date()) async throws {
        try await IdempotencyRecord.query(on: db).filter(\.$createdAt < now.addingTimeInterval(-keepFor)).delete()
    }
}
