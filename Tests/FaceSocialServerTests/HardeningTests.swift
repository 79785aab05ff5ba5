import Fluent
import Foundation
import Logging
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 23, rows 4, 8, 9, 11 and 12: log lines that cannot be forged, passwords and emails that
/// are refused, `/metrics` and the OpenAPI document in production, slow clients dropped.
@Suite("Security hardening: passwords, emails, log lines, metrics, slow clients")
struct HardeningTests {
    // MARK: Row 8 and 9, against the server

    @Test func weakPasswordsAndLookAlikeEmailsAreRefused() async throws {
        try await withFaceSocial(securityEnv()) { app in
            let (admin, _) = try await login(app, adminEmail, adminPassword)
            func create(_ email: String, _ password: String) async throws -> (HTTPStatus, String?, String?) {
                var answer: (HTTPStatus, String?, String?) = (.ok, nil, nil)
                try await app.testing().test(
                    .POST, "/v1/users", headers: bearer(admin),
                    body: try jsonBody(["email": email, "password": password, "role": "user"])
                ) { res in
                    answer = (res.status, errorCode(res), body(res)[path: "error.details.field"] as? String)
                }
                return answer
            }
            // Passwords: whitespace only, a run of digits, the email itself, a common one, too few
            // different characters.
            for password in [
                String(repeating: " ", count: 12), "123456789012", "carol@example.com", "password1234", "abababababab",
                "qwertyuiopas",
            ] {
                let (status, code, field) = try await create("carol@example.com", password)
                #expect(status == .badRequest && code == "VALIDATION_FAILED" && field == "password", "\(password)")
            }
            #expect(try await create("carol@example.com", "a fine long passphrase").0 == .created)

            // Emails: the full-width spelling and another case are the admin's address (409); a
            // Cyrillic letter among Latin ones, a zero-width space and a bidi mark are refused.
            for email in ["ａｄｍｉｎ@example.com", "ADMIN@Example.COM"] {
                let (status, code, field) = try await create(email, "another fine passphrase")
                #expect(status == .conflict && code == "CONFLICT" && field == "email", "\(email)")
            }
            for email in [
                "\u{0430}dmin@example.com", "ad\u{200B}min@example.com", "admin\u{202E}@example.com",
                "admin@ex\u{0430}mple.com",
            ] {
                let (status, code, field) = try await create(email, "another fine passphrase")
                #expect(status == .badRequest && code == "VALIDATION_FAILED" && field == "email", "\(email)")
            }
            // One script throughout is an address like any other, and sign-in folds spellings.
            #expect(
                try await create("\u{0434}\u{0438}\u{043C}\u{0430}@example.com", "another fine passphrase").0
                    == .created)
            _ = try await login(app, "ａｄｍｉｎ@example.com", adminPassword)
            #expect(try await User.query(on: app.db).count() == 3)

            // An admin changing a password meets the same policy.
            let carol = try #require(try await User.query(on: app.db).filter(\.$email == "carol@example.com").first())
            try await app.testing().test(
                .PATCH, "/v1/users/\(try carol.requireID())", headers: bearer(admin),
                body: try jsonBody(["password": "carol@example.com"])
            ) { res in
                #expect(res.status == .badRequest)
                #expect(body(res)[path: "error.details.field"] as? String == "password")
            }
        }
    }

    @Test func passwordPolicyAndScripts() throws {
        #expect(PasswordPolicy.problem("correct-horse-battery", email: "a@b.c") == nil)
        #expect(PasswordPolicy.problem("0987654321098", email: nil) != nil)  // backwards, wrapping
        #expect(PasswordPolicy.problem("Password1234", email: nil) != nil)  // the list is matched without case
        #expect(PasswordPolicy.problem("dave.smith.1", email: "Dave.Smith.1@example.com") != nil)
        #expect(PasswordPolicy.problem(String(repeating: "x", count: 11) + "y", email: nil) != nil)
        #expect(PasswordPolicy.problem("short", email: nil) != nil)
        #expect(CommonPasswords.list.count > 19_000)
        #expect(Script.isSingleScript("東京タワーとtokyo"))  // Japanese mixes Han, kana and Latin
        #expect(!Script.isSingleScript("p\u{0430}ypal"))
        #expect(throws: APIError.self) { try EmailAddress.validated("a\u{0000}b@example.com") }
        #expect(try EmailAddress.validated("Ｂｏｂ@Example.com") == "bob@example.com")
    }

    // MARK: Row 4: log lines

    /// Every field a log line carries (label, message, metadata keys and values, nested ones), fed
    /// CR, LF, NUL, ESC, DEL, a C1 control and the Unicode line separator: one record stays one
    /// line without a raw control byte, in both formats, and JSON keeps the exact values.
    @Test func logLinesCannotBeForged() throws {
        let hostile = "abc\r\nFORGED line\u{0000}\u{001B}[31mred\u{007F}\u{0085}\u{2028}end\\n"
        let lines = Mutex<[String]>([])
        let sink: @Sendable (String) -> Void = { line in lines.withLock { $0.append(line) } }
        var text = LineLogHandler(label: "label\(hostile)", level: .trace, format: .text, write: sink)
        var json = LineLogHandler(label: "label\(hostile)", level: .trace, format: .json, write: sink)
        text[metadataKey: "handler\(hostile)"] = .string(hostile)
        json[metadataKey: "handler\(hostile)"] = .string(hostile)
        for handler in [text, json] as [any LogHandler] {
            var logger = Logger(label: "x") { _ in handler }
            logger.logLevel = .trace
            logger.info(
                "message \(hostile)",
                metadata: [
                    "key\(hostile)": .string(hostile), "list": .array([.string(hostile)]),
                    "nested": .dictionary(["inner\(hostile)": .stringConvertible(hostile)]),
                ])
        }
        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        for line in written {
            #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { $0 != "\n" && $0 != "\r" })
            let controls = line.dropLast().unicodeScalars.filter {
                $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028
            }
            #expect(controls.isEmpty, "raw control characters in \(line)")
            #expect(!line.contains("\nFORGED"))
        }
        // The text line shows what was sent, escaped.
        #expect(written[0].contains(#"abc\r\nFORGED line\u{0}\u{1b}[31mred\u{7f}\u{85}\u{2028}end\\n"#))
        // The JSON line decodes to exactly what was logged.
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(written[1].utf8)) as? [String: Any])
        #expect(object["message"] as? String == "message \(hostile)")
        #expect(object["key\(hostile)"] as? String == hostile)
        #expect(object["handler\(hostile)"] as? String == hostile)
        #expect(object["logger"] as? String == "label\(hostile)")
    }

    // MARK: Row 12: metrics and the OpenAPI document in production

    @Test func productionMetricsNeedAMonitorAndOpenAPIIsOptIn() async throws {
        let token = String(repeating: "m", count: 40)
        var production = securityEnv([
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "k", count: 40),
            "FACESOCIAL_DATA_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
            "FACESOCIAL_BCRYPT_COST": "10", "FACESOCIAL_METRICS_TOKEN": token,
        ])
        try await withFaceSocial(production) { app in
            try await makeUser(app, "watcher@example.com", role: .user)
            let (user, _) = try await login(app, "watcher@example.com", "password-watcher@example.com")
            let (admin, _) = try await login(app, adminEmail, adminPassword)
            let cases: [(String, HTTPHeaders, HTTPStatus)] = [
                ("anonymous", [:], .unauthorized),
                ("a wrong token", ["Authorization": "Bearer " + String(repeating: "n", count: 40)], .unauthorized),
                ("a user without system:monitor", bearer(user), .forbidden),
                ("the scraper's token", ["Authorization": "Bearer \(token)"], .ok),
                ("an admin", bearer(admin), .ok),
            ]
            for (who, headers, status) in cases {
                try await app.testing().test(.GET, "/metrics", headers: headers) { res in
                    #expect(res.status == status, "/metrics for \(who)")
                    if status == .ok { #expect(res.body.string.contains("http_requests_total")) }
                }
            }
            // The scraper is a monitor and nothing more.
            try await app.testing().test(.GET, "/system/models", headers: ["Authorization": "Bearer \(token)"]) {
                res in #expect(res.status == .ok)
            }
            try await app.testing().test(.GET, "/v1/users", headers: ["Authorization": "Bearer \(token)"]) { res in
                #expect(res.status == .forbidden)
            }
            try await app.testing().test(.GET, "/openapi.json") { res in #expect(res.status == .notFound) }
        }
        production["FACESOCIAL_OPENAPI"] = "true"
        production["FACESOCIAL_METRICS_TOKEN"] = "too-short"
        #expect(throws: ConfigError.self) { try testConfig(production) }
        production["FACESOCIAL_METRICS_TOKEN"] = nil
        try await withFaceSocial(production) { app in
            try await app.testing().test(.GET, "/openapi.json") { res in #expect(res.status == .ok) }
            try await app.testing().test(.GET, "/metrics") { res in #expect(res.status == .unauthorized) }
        }
    }

    // MARK: Row 11: slow clients

    /// With a 20 s idle timeout and a 25 s body timeout: a socket that sends nothing, one that stops
    /// halfway through its head, and one that trickles its upload are all let go, while a normal
    /// client is answered as usual the whole time (the half head is cut by the default 10 s head
    /// deadline, the others by the idle and body timeouts).
    @Test func slowClientsAreDroppedAndOthersServed() async throws {
        let port = try RedisTestServer.freePort()
        try await withFaceSocial([
            "FACESOCIAL_IDLE_TIMEOUT_SECONDS": "20", "FACESOCIAL_BODY_TIMEOUT_SECONDS": "25",
        ]) { app in
            // Started here, not per request as the testing client does: the sockets outlive requests.
            try await app.server.start(address: .hostname("127.0.0.1", port: port))
            // The raw clients block in recv: on their own threads, so they never starve the pool
            // the server's handlers run on (two threads on two cores).
            func health() async throws -> String {
                try await onThread {
                    try RawClient(port: port).exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                }
            }
            let silent = try (0..<20).map { _ in try RawClient(port: port) }
            let halfHead = try RawClient(port: port)
            try halfHead.send("POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: ima")
            let trickle = try RawClient(port: port)
            try trickle.send(
                "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
            let started = ContinuousClock.now
            // The trickle sends a byte a second, within the idle timeout, until it is answered.
            let trickled = Task {
                try await onThread { () -> String in
                    var answer = ""
                    for _ in 0..<90 {
                        try? trickle.send("x")
                        answer += trickle.receive(waitingSeconds: 1)
                        if answer.contains("\r\n\r\n") || trickle.closed { break }
                    }
                    return answer
                }
            }
            // Meanwhile, a normal client.
            for _ in 0..<5 {
                let answer = try await health()
                #expect(answer.hasPrefix("HTTP/1.1 200"), "a normal client got: \(answer.prefix(300))")
                try await Task.sleep(for: .milliseconds(300))
            }
            let answer = try await trickled.value
            #expect(answer.hasPrefix("HTTP/1.1 408"), "the trickled upload got: \(answer.prefix(200))")
            #expect(answer.contains("REQUEST_TIMEOUT"))
            let kept = try await onThread { (silent + [halfHead]).filter { !$0.waitUntilClosed(seconds: 60) }.count }
            #expect(kept == 0, "\(kept) idle connections were kept")
            // Generous bounds for a busy machine; without the timeouts none of them would close.
            #expect(ContinuousClock.now - started < .seconds(120))
            #expect(try await health().hasPrefix("HTTP/1.1 200"))
            await app.server.shutdown()
        }
    }
}

extension HardeningTests {
    /// A head dripped a byte a second never lets the connection go idle; the head deadline (3 s)
    /// still closes it. Past the connection cap (4) a new connection is answered 503
    /// `TOO_MANY_CONNECTIONS` and closed, and once one of the four closes a new client is served.
    @Test func aDrippedHeadIsCutAndConnectionsAreCapped() async throws {
        let port = try RedisTestServer.freePort()
        try await withFaceSocial([
            "FACESOCIAL_IDLE_TIMEOUT_SECONDS": "30", "FACESOCIAL_HEAD_TIMEOUT_SECONDS": "3",
            "FACESOCIAL_MAX_CONNECTIONS": "4",
        ]) { app in
            try await app.server.start(address: .hostname("127.0.0.1", port: port))
            let server = try #require(app.server as? FaceSocialHTTPServer)
            let dripped = try await onThread { () -> (closed: Bool, seconds: Double) in
                let client = try RawClient(port: port)
                let started = Date()
                for byte in "GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                    try? client.send(String(byte))
                    _ = client.receive(waitingSeconds: 1)
                    if client.closed { break }
                }
                return (client.closed, Date().timeIntervalSince(started))
            }
            // Without the head deadline the drip (about 60 s) would end with the head unfinished and the
            // connection open; the bound leaves room for a busy machine.
            #expect(dripped.closed, "the dripped head was let go")
            #expect(dripped.seconds < 30, "closed after \(dripped.seconds) s")

            let held = try (0..<4).map { _ in try RawClient(port: port) }
            try await Task.sleep(for: .milliseconds(500))
            let refused = try await onThread {
                try RawClient(port: port).exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            }
            #expect(refused.hasPrefix("HTTP/1.1 503"), "past the cap: \(refused.prefix(200))")
            #expect(refused.contains("TOO_MANY_CONNECTIONS") && refused.contains("Retry-After: 1"))
            #expect(server.refusedConnections >= 1)
            shutdown(held[0].fd, Int32(SHUT_RDWR))  // the fd itself is closed with its client
            var served = ""
            for _ in 0..<20 where !served.hasPrefix("HTTP/1.1 200") {
                try await Task.sleep(for: .milliseconds(250))
                served = try await onThread {
                    try RawClient(port: port).exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                }
            }
            #expect(served.hasPrefix("HTTP/1.1 200"), "after one closed: \(served.prefix(200))")
            _ = held
            await app.server.shutdown()
        }
    }
}

extension HardeningTests {
    /// The server reads each body within its route's limit: with a 2 KiB image limit a 5,000-byte
    /// chunked body (no length to refuse up front) is 413 on `/v1/detect` and the connection
    /// answers the next request; the batch route, which declares room for 16 images, takes it to
    /// the route (which answers 200 with the item's own error). A client waiting for `100 Continue` is answered at once.
    @Test func eachRouteGetsItsBodyLimit() async throws {
        let port = try RedisTestServer.freePort()
        try await withFaceSocial(["FACESOCIAL_MAX_BODY_BYTES": "2048"]) { app in
            try await app.server.start(address: .hostname("127.0.0.1", port: port))
            @Sendable func chunked(_ path: String, connection: String) -> String {
                let chunk = String(repeating: "x", count: 1000)
                return
                    "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nConnection: \(connection)\r\n\r\n"
                    + String(repeating: "3e8\r\n\(chunk)\r\n", count: 5) + "0\r\n\r\n"
            }
            let answers = try await onThread { () -> [String] in
                let client = try RawClient(port: port)
                try client.send(chunked("/v1/detect", connection: "keep-alive"))
                var first = ""
                for _ in 0..<20 where !first.contains("}") { first += client.receive(waitingSeconds: 1) }
                let second = try client.exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let batch = try RawClient(port: port).exchange(chunked("/v1/batch/analyze", connection: "close"))
                let waiting = try RawClient(port: port).exchange(
                    "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n")
                let continued = try RawClient(port: port)
                try continued.send(
                    "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
                let interim = continued.receive(waitingSeconds: 5)
                return [first, second, batch, waiting, interim]
            }
            #expect(
                answers[0].hasPrefix("HTTP/1.1 413") && answers[0].contains("IMAGE_TOO_LARGE"),
                "\(answers[0].prefix(300))")
            #expect(answers[1].hasPrefix("HTTP/1.1 200"), "the same connection afterwards: \(answers[1].prefix(200))")
            #expect(answers[2].hasPrefix("HTTP/1.1 200"), "the batch route: \(answers[2].prefix(600))")
            #expect(answers[3].hasPrefix("HTTP/1.1 413"), "\(answers[3].prefix(200))")
            #expect(answers[4].hasPrefix("HTTP/1.1 100 Continue"), "\(answers[4].prefix(200))")
            await app.server.shutdown()
        }
    }
}

extension HardeningTests {
    /// The server's side of an accepted connection has TCP_NODELAY and not SO_DEBUG (which needs
    /// CAP_NET_ADMIN: a server that asked for it by mistake lost every connection in a container
    /// without capabilities, while here, as root, it worked). The server runs in this process, so
    /// its socket is found among this process's descriptors by its two ports.
    @Test func acceptedConnectionsHaveTCPNoDelay() async throws {
        let port = try RedisTestServer.freePort()
        try await withFaceSocial { app in
            try await app.server.start(address: .hostname("127.0.0.1", port: port))
            let client = try RawClient(port: port)
            try client.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            var answer = ""
            for _ in 0..<20 where !answer.contains("\r\n\r\n") { answer += client.receive(waitingSeconds: 1) }
            #expect(answer.hasPrefix("HTTP/1.1 200"))
            let clientPort = Self.ports(of: client.fd).local
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
                Int32($0)
            }
            let server = descriptors.filter { fd in
                let ports = Self.ports(of: fd)
                return ports.local == port && ports.peer == clientPort
            }
            try #require(server.count == 1, "the server's side of the connection among this process's descriptors")
            #expect(Self.option(server[0], Int32(IPPROTO_TCP), TCP_NODELAY) == 1)
            #expect(Self.option(server[0], SOL_SOCKET, SO_DEBUG) == 0)
            await app.server.shutdown()
        }
    }

    static func ports(of fd: Int32) -> (local: Int, peer: Int) {
        func port(_ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> Int {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) == 0 }
            }
            return ok && address.sin_family == sa_family_t(AF_INET) ? Int(UInt16(bigEndian: address.sin_port)) : -1
        }
        return (port(getsockname), port(getpeername))
    }

    static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : -1
    }
}

/// Runs blocking work on a thread of its own and awaits it.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// A plain TCP client for what an HTTP client library will not do (send half a request, stall).
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private(set) var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw RawClientError.connect }
    }

    deinit { close(fd) }

    enum RawClientError: Error { case connect, send }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw RawClientError.send }
    }

    /// What arrives within `waitingSeconds`; marks the client closed when the server closed.
    func receive(waitingSeconds: Int) -> String {
        var timeout = timeval(tv_sec: waitingSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        let error = errno
        // 0: the server closed; a reset is a close too; anything else (the timeout) is no data yet.
        if n == 0 || (n < 0 && (error == ECONNRESET || error == EPIPE || error == ENOTCONN)) { closed = true }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    /// Sends a whole request that asks to close, and returns everything until the server closes.
    func exchange(_ request: String) throws -> String {
        try send(request)
        var answer = ""
        for _ in 0..<30 where !closed { answer += receive(waitingSeconds: 1) }
        return answer
    }

    func waitUntilClosed(seconds: Int) -> Bool {
        for _ in 0..<seconds where !closed { _ = receive(waitingSeconds: 1) }
        return closed
    }
}
