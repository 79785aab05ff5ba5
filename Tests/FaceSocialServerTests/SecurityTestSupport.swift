import Fluent
import Foundation
import Logging
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// Every log line of the test process, so the privacy test can scan them for image bytes.
enum LogCapture {
    static let lines = Mutex<[String]>([])
    static let installed: Void = {
        LoggingSystem.bootstrap { label in
            MultiplexLogHandler([StreamLogHandler.standardError(label: label), Handler(label: label)])
        }
    }()

    struct Handler: LogHandler {
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level) \(label) \(event.message) \(all)"
            LogCapture.lines.withLock { if $0.count < 200_000 { $0.append(line) } }
        }
    }
}

/// Settings for fast security tests: cheap bcrypt, a known admin.
let adminEmail = "admin@example.com"
let adminPassword = "correct-horse-battery"

func securityEnv(_ extra: [String: String] = [:]) -> [String: String] {
    var env = [
        "FACESOCIAL_BCRYPT_COST": "4", "FACESOCIAL_ADMIN_EMAIL": adminEmail,
        "FACESOCIAL_ADMIN_PASSWORD": adminPassword,
    ]
    for (key, value) in extra { env[key] = value }
    return env
}

func jsonBody(_ object: [String: Any]) throws -> ByteBuffer {
    ByteBuffer(data: try JSONSerialization.data(withJSONObject: object))
}

let jsonHeaders: HTTPHeaders = ["Content-Type": "application/json"]

/// Signs in and returns (access, refresh).
func login(_ app: Application, _ email: String, _ password: String) async throws -> (String, String) {
    var tokens = ("", "")
    try await app.testing().test(
        .POST, "/v1/auth/login", headers: jsonHeaders, body: try jsonBody(["email": email, "password": password])
    ) { res in
        #expect(res.status == .ok, "login \(email): \(res.body.string)")
        expectConforms("POST", "/v1/auth/login", res)
        let data = body(res)
        tokens = (data[path: "data.access_token"] as? String ?? "", data[path: "data.refresh_token"] as? String ?? "")
    }
    return tokens
}

func makeUser(_ app: Application, _ email: String, role: Role, collections: [String] = []) async throws {
    _ = try await Users.create(
        email: email, password: "password-\(email)", role: role.rawValue, collections: collections, cost: 4,
        on: app.db, threadPool: app.threadPool)
}

func bearer(_ token: String) -> HTTPHeaders {
    ["Authorization": "Bearer \(token)", "Content-Type": "application/json"]
}

/// Audit rows matching an action and outcome.
func auditRows(_ app: Application, action: String, outcome: String? = nil) async throws -> [AuditEvent] {
    var query = AuditEvent.query(on: app.db).filter(\.$action == action)
    if let outcome { query = query.filter(\.$outcome == outcome) }
    return try await query.all()
}

/// A JWT with any header, signed by `sign` over `header.payload`.
func forgeToken(header: [String: Any], payload: [String: Any], sign: (Data) -> Data) throws -> String {
    func part(_ object: [String: Any]) throws -> String {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).base64URLEncoded
    }
    let input = "\(try part(header)).\(try part(payload))"
    return "\(input).\(sign(Data(input.utf8)).base64URLEncoded)"
}

func hmacSHA256(_ secret: Data) -> (Data) -> Data {
    { Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: secret))) }
}

func validPayload(sub: String, exp: Date = Date().addingTimeInterval(600)) -> [String: Any] {
    [
        "sub": sub, "exp": exp.timeIntervalSince1970, "iat": Date().timeIntervalSince1970, "jti": UUID().uuidString,
        "iss": "facesocial", "role": "admin", "typ": "access", "aud": "facesocial-api",
    ]
}

/// Runs a tool to completion and returns its exit status and standard output. Reaped with
/// waitpid, because waitUntilExit() can spin inside Swift concurrency on Linux.
func runTool(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    let pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    var status: Int32 = 0
    let pid = process.processIdentifier
    for _ in 0..<500 {
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid || (reaped == -1 && errno == ECHILD) { break }
        usleep(10_000)
    }
    return ((status >> 8) & 0xFF, String(decoding: output, as: UTF8.self))
}

/// Rate-limit windows are clock-aligned minutes: a sequence of requests that straddles a boundary
/// starts counting again half-way. Waits for the next minute unless `seconds` are left in this one;
/// call it once the servers are up, right before the sequence.
func awayFromAMinuteBoundary(leaving seconds: Double = 15) async throws {
    let second = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 60)
    if 60 - second < seconds { try await Task.sleep(for: .milliseconds(Int((60.5 - second) * 1000))) }
}

/// Two instances that share Redis count one per-address limit of `limit` requests a minute: the
/// limit spent half on each passes, the next request is refused by either.
func expectOneIPLimit(of limit: Int, across first: Application, _ second: Application) async throws {
    // The windows are clock minutes, and on a busy machine (a cold fresh-clone run) one request has
    // taken 16 s: a sequence that ends in the next window has had its count reset, so it says
    // nothing and runs again in a window of its own. The same minute at both ends means one window.
    func minute() -> Int { Int(Date().timeIntervalSince1970) / 60 }
    for attempt in 1...3 {
        // Generous: the suite runs in parallel. After a straddle, the next whole window: the
        // requests already sent in this one count.
        try await awayFromAMinuteBoundary(leaving: attempt == 1 ? 30 : 61)
        let start = minute()
        var statuses: [HTTPStatus] = []
        for app in Array(repeating: first, count: (limit + 1) / 2) + Array(repeating: second, count: limit / 2) {
            try await app.testing().test(.GET, "/v1/auth/me") { res in statuses.append(res.status) }
        }
        var refused: (status: HTTPStatus, code: String?, limit: String?, remaining: String?, retryAfter: String?)?
        try await second.testing().test(.GET, "/v1/auth/me") { res in
            refused = (
                res.status, errorCode(res), res.headers.first(name: "X-RateLimit-Limit"),
                res.headers.first(name: "X-RateLimit-Remaining"), res.headers.first(name: "Retry-After")
            )
            expectConforms("GET", "/v1/auth/me", res)
        }
        var alsoRefused: HTTPStatus?
        try await first.testing().test(.GET, "/v1/auth/me") { res in alsoRefused = res.status }
        #expect(!statuses.contains(.tooManyRequests), "\(statuses)")
        guard minute() == start else {
            if attempt == 3 { Issue.record("three sequences in a row straddled a minute boundary") }
            continue
        }
        let answer = try #require(refused)
        #expect(answer.status == .tooManyRequests)
        #expect(answer.code == "RATE_LIMIT_EXCEEDED")
        #expect(answer.limit == String(limit))
        #expect(answer.remaining == "0")
        #expect(Int(answer.retryAfter ?? "") != nil)
        #expect(alsoRefused == .tooManyRequests)
        return
    }
}
