import Fluent
import Foundation
import NIOSSL
import SQLKit
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Accounts, collection ownership, client addresses, audit purge, native TLS")
struct AccountTests {
    func userID(_ app: Application, _ adminToken: String, _ email: String) async throws -> String {
        var id = ""
        try await app.testing().test(.GET, "/v1/users", headers: bearer(adminToken)) { res in
            let users = body(res)[path: "data"] as? [[String: Any]] ?? []
            id = users.first { $0["email"] as? String == email }?["id"] as? String ?? ""
        }
        return try #require(id.isEmpty ? nil : id)
    }

    @Test func userChangesTakeEffectAndDisablingEndsSessions() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await makeUser(app, "dev@c.example", role: .developer)
            let (adminToken, _) = try await login(app, adminEmail, adminPassword)
            let (devToken, devRefresh) = try await login(app, "dev@c.example", "password-dev@c.example")
            let id = try await userID(app, adminToken, "dev@c.example")
            let path = "/v1/users/\(id)"

            // Demoted to `user`: the next request already lacks collections:write.
            try await app.testing().test(
                .PATCH, path, headers: bearer(adminToken), body: try jsonBody(["role": "user"])
            ) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                expectConforms("PATCH", "/v1/users/{user_id}", res)
                #expect(body(res)[path: "data.role"] as? String == "user")
            }
            // The token issued before the change has ended; a new sign-in has the new role's rights.
            try await app.testing().test(
                .POST, "/v1/collections", headers: bearer(devToken), body: try jsonBody(["name": "after-demotion"])
            ) { res in #expect(res.status == .unauthorized) }
            let (demotedToken, _) = try await login(app, "dev@c.example", "password-dev@c.example")
            try await app.testing().test(
                .POST, "/v1/collections", headers: bearer(demotedToken),
                body: try jsonBody(["name": "after-demotion"])
            ) { res in #expect(res.status == .forbidden) }

            // Disabled: its access token, its refresh token and its password all stop working.
            try await app.testing().test(
                .PATCH, path, headers: bearer(adminToken), body: try jsonBody(["is_active": false])
            ) { res in
                #expect(res.status == .ok)
                #expect(body(res)[path: "data.is_active"] as? Bool == false)
            }
            try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(demotedToken)) { res in
                #expect(res.status == .unauthorized)
            }
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": devRefresh])
            ) { res in #expect(res.status == .unauthorized) }
            try await app.testing().test(
                .POST, "/v1/auth/login", headers: jsonHeaders,
                body: try jsonBody(["email": "dev@c.example", "password": "password-dev@c.example"])
            ) { res in #expect(res.status == .unauthorized) }
            #expect(
                try await RefreshToken.query(on: app.db).filter(\.$revokedAt == nil).all().allSatisfy {
                    $0.userID.uuidString.lowercased() != id
                })

            // Re-enabled with a new password: only the new one signs in.
            try await app.testing().test(
                .PATCH, path, headers: bearer(adminToken),
                body: try jsonBody(["is_active": true, "password": "a-brand-new-password"])
            ) { res in #expect(res.status == .ok) }
            _ = try await login(app, "dev@c.example", "a-brand-new-password")

            // The last active admin stays one; bad input is refused with its field.
            let adminID = try await userID(app, adminToken, adminEmail)
            for change in [["is_active": false], ["role": "operator"]] as [[String: Any]] {
                try await app.testing().test(
                    .PATCH, "/v1/users/\(adminID)", headers: bearer(adminToken), body: try jsonBody(change)
                ) { res in
                    #expect(res.status == .conflict, "\(change)")
                    #expect(errorCode(res) == "CONFLICT")
                }
            }
            for (target, change, status) in [
                (path, ["role": "root"], HTTPStatus.badRequest), (path, ["password": "short"], .badRequest),
                (path, ["collections": ["../etc"]], .badRequest),
                ("/v1/users/not-a-uuid", ["role": "user"], .badRequest),
                ("/v1/users/\(UUID().uuidString)", ["role": "user"], .notFound),
            ] as [(String, [String: Any], HTTPStatus)] {
                try await app.testing().test(.PATCH, target, headers: bearer(adminToken), body: try jsonBody(change)) {
                    res in #expect(res.status == status, "\(target) \(change)")
                }
            }
            // Only admins change users.
            try await makeUser(app, "op@c.example", role: .operator)
            let (opToken, _) = try await login(app, "op@c.example", "password-op@c.example")
            try await app.testing().test(
                .PATCH, path, headers: bearer(opToken), body: try jsonBody(["role": "admin"])
            ) { res in #expect(res.status == .forbidden) }

            let updates = try await auditRows(app, action: "user.update", outcome: "success")
            #expect(updates.count == 3)
            #expect(updates.allSatisfy { $0.resourceID == id })
        }
    }

    @Test func aDeveloperReachesTheCollectionItCreatesAndNoOneElseDoes() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await makeUser(app, "dev1@c.example", role: .developer)
            try await makeUser(app, "dev2@c.example", role: .developer)
            let (dev1, _) = try await login(app, "dev1@c.example", "password-dev1@c.example")
            let (dev2, _) = try await login(app, "dev2@c.example", "password-dev2@c.example")
            var collection = ""
            try await app.testing().test(
                .POST, "/v1/collections", headers: bearer(dev1), body: try jsonBody(["name": "dev1-gallery"])
            ) { res in
                #expect(res.status == .created)
                collection = body(res)[path: "data.id"] as? String ?? ""
            }
            try await app.testing().test(.GET, "/v1/collections/\(collection)", headers: bearer(dev1)) { res in
                #expect(res.status == .ok)
            }
            try await app.testing().test(.GET, "/v1/collections", headers: bearer(dev1)) { res in
                #expect(
                    (body(res)[path: "data.items"] as? [[String: Any]])?.map { $0["id"] as? String } == [collection])
            }
            try await app.testing().test(.GET, "/v1/collections/\(collection)", headers: bearer(dev2)) { res in
                #expect(res.status == .forbidden)
            }
            // The collection's API key works inside it but cannot create collections.
            var key = ""
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/api-keys", headers: bearer(dev1),
                body: try jsonBody(["name": "ci", "scopes": ["collections:read", "collections:write"]])
            ) { res in
                #expect(res.status == .created)
                key = body(res)[path: "data.key"] as? String ?? ""
            }
            try await app.testing().test(.GET, "/v1/collections/\(collection)", headers: ["x-api-key": key]) { res in
                #expect(res.status == .ok)
            }
            try await app.testing().test(
                .POST, "/v1/collections", headers: ["x-api-key": key, "Content-Type": "application/json"],
                body: try jsonBody(["name": "from-a-key"])
            ) { res in
                #expect(res.status == .forbidden)
                #expect(errorCode(res) == "FORBIDDEN")
            }
            let created = try await auditRows(app, action: "collection.create", outcome: "success")
            #expect(created.map(\.resourceID) == [collection.lowercased()])
        }
    }

    /// A key acts for its creator: it stops when the creator is disabled or loses the collection,
    /// and when it expires.
    @Test func apiKeysEndWithTheirCreatorsAccessAndExpire() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await makeUser(app, "keys@c.example", role: .developer, collections: ["c1", "c2"])
            let (adminToken, _) = try await login(app, adminEmail, adminPassword)
            let (devToken, _) = try await login(app, "keys@c.example", "password-keys@c.example")
            let id = try await userID(app, adminToken, "keys@c.example")
            func mint(_ collection: String, expiresAt: String? = nil) async throws -> String {
                var key = ""
                var fields: [String: Any] = ["name": "ci", "scopes": ["collections:read"]]
                if let expiresAt { fields["expires_at"] = expiresAt }
                try await app.testing().test(
                    .POST, "/v1/collections/\(collection)/api-keys", headers: bearer(devToken),
                    body: try jsonBody(fields)
                ) { res in
                    #expect(res.status == .created, "\(res.body.string)")
                    expectConforms("POST", "/v1/collections/{collection}/api-keys", res)
                    key = body(res)[path: "data.key"] as? String ?? ""
                }
                return key
            }
            func status(_ key: String, _ collection: String) async throws -> HTTPStatus {
                var status = HTTPStatus.ok
                try await app.testing().test(
                    .GET, "/v1/collections/\(collection)/api-keys", headers: ["x-api-key": key]
                ) { res in status = res.status }
                return status
            }
            func patch(_ change: [String: Any]) async throws {
                try await app.testing().test(
                    .PATCH, "/v1/users/\(id)", headers: bearer(adminToken), body: try jsonBody(change)
                ) { res in #expect(res.status == .ok) }
            }
            let keyC1 = try await mint("c1")
            let keyC2 = try await mint("c2")
            // Long enough that a busy machine still sees the key valid before the checks below (20 s
            // was not: a full `make test` once took longer than that to mint three keys).
            let expiry = Date().addingTimeInterval(90)
            let soon = expiry.formatted(.iso8601)
            let expiring = try await mint("c2", expiresAt: soon)
            #expect(try await status(keyC1, "c1") == .ok)
            #expect(try await status(expiring, "c2") == .ok)

            // The admin takes c1 away from the developer: the c1 key stops, the c2 key goes on.
            try await patch(["collections": ["c2"]])
            #expect(try await status(keyC1, "c1") == .unauthorized, "key outlived its creator's access")
            #expect(try await status(keyC2, "c2") == .ok)
            // Disabled: every key of the developer stops; enabled again, the c2 key works again.
            try await patch(["is_active": false])
            #expect(try await status(keyC2, "c2") == .unauthorized, "key outlived its disabled creator")
            try await patch(["is_active": true])
            #expect(try await status(keyC2, "c2") == .ok)
            // Expiry.
            try await Task.sleep(for: .milliseconds(Int(max(0, expiry.timeIntervalSinceNow) * 1000) + 1500))
            #expect(try await status(expiring, "c2") == .unauthorized, "expired key still answers")
            // A past or malformed expiry is refused with its field.
            for bad in ["2020-01-01T00:00:00Z", "tomorrow"] {
                let (devToken2, _) = try await login(app, "keys@c.example", "password-keys@c.example")
                try await app.testing().test(
                    .POST, "/v1/collections/c2/api-keys", headers: bearer(devToken2),
                    body: try jsonBody(["name": "ci", "scopes": ["collections:read"], "expires_at": bad])
                ) { res in
                    #expect(res.status == .badRequest, "\(bad)")
                    #expect(errorCode(res) == "VALIDATION_FAILED")
                    #expect(body(res)[path: "error.details.field"] as? String == "expires_at")
                }
            }
            let denied = try await auditRows(app, action: "auth.api_key", outcome: "denied")
            #expect(denied.count == 3)
        }
    }

    /// Control characters (NUL, ESC sequences, line breaks) are refused in every stored name and
    /// metadata string with 400 VALIDATION_FAILED and the field; ordinary Unicode is kept.
    @Test func controlCharactersAreRefusedInStoredText() async throws {
        try await withFaceSocial(securityEnv()) { app in
            let (token, _) = try await login(app, adminEmail, adminPassword)
            func post(_ path: String, _ fields: [String: Any]) async throws -> (HTTPStatus, String?, [String: Any]) {
                var result: (HTTPStatus, String?, [String: Any]) = (.ok, nil, [:])
                try await app.testing().test(.POST, path, headers: bearer(token), body: try jsonBody(fields)) { res in
                    result = (res.status, body(res)[path: "error.details.field"] as? String, body(res))
                }
                return result
            }
            for bad in ["evil\u{0}\u{1b}[31mred", "two\nlines", "bell\u{7}", "c1\u{9b}31m", "del\u{7f}"] {
                let refused = try await post("/v1/collections", ["name": bad])
                #expect(refused.0 == .badRequest && refused.1 == "name", "collection name \(bad.debugDescription)")
            }
            let made = try await post("/v1/collections", ["name": "Zoë's gallery 日本"])
            #expect(made.0 == .created)
            let collection = made.2[path: "data.id"] as? String ?? ""
            let subjects = "/v1/collections/\(collection)/subjects"
            let cases: [([String: Any], String)] = [
                (["external_id": "ok-1", "name": "a\u{1b}]0;title\u{7}"], "name"),
                (["external_id": "bad\u{0}id"], "external_id"),
                (["external_id": "ok-2", "metadata": ["note": "x\u{1b}[2J"]], "metadata"),
                (["external_id": "ok-3", "metadata": ["k\u{0}": "v"]], "metadata"),
                (["external_id": "ok-4", "metadata": ["list": ["fine", "\r\nForged: yes"]]], "metadata"),
            ]
            for (fields, field) in cases {
                let refused = try await post(subjects, fields)
                #expect(refused.0 == .badRequest, "\(fields)")
                #expect(refused.1 == field, "\(fields)")
                #expect(refused.2[path: "error.code"] as? String == "VALIDATION_FAILED")
            }
            #expect(try await post(subjects, ["external_id": "ok-5", "metadata": ["note": "Zoë"]]).0 == .created)
            // Changing a subject follows the same rule.
            let subject = try await post(subjects, ["external_id": "ok-6"]).2[path: "data.id"] as? String ?? ""
            try await app.testing().test(
                .PATCH, "\(subjects)/\(subject)", headers: bearer(token), body: try jsonBody(["name": "x\u{0}"])
            ) { res in
                #expect(res.status == .badRequest)
                #expect(body(res)[path: "error.details.field"] as? String == "name")
            }
        }
    }

    @Test func networksMatchAddresses() throws {
        let v4 = try #require(IPNetwork("10.1.0.0/16"))
        #expect(v4.contains("10.1.200.3") && !v4.contains("10.2.0.1") && !v4.contains("::1"))
        #expect(v4.contains("::ffff:10.1.2.3"), "IPv4-mapped IPv6 is the IPv4 address")
        let host = try #require(IPNetwork("127.0.0.1"))
        #expect(host.contains("127.0.0.1") && !host.contains("127.0.0.2"))
        let v6 = try #require(IPNetwork("fd00::/8"))
        #expect(v6.contains("fd12:3456::1") && !v6.contains("fe80::1"))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains("203.0.113.9"))
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "example.com", "::1/129", "1.2.3.4/x"] {
            #expect(IPNetwork(bad) == nil, "\(bad)")
        }
        #expect(throws: ConfigError.self) {
            try AppConfig.fromEnvironment(["FACESOCIAL_TRUSTED_PROXIES": "10.0.0.0/8,nope"])
        }
    }

    /// Behind a trusted proxy the per-IP limit and the audit rows use the client from
    /// X-Forwarded-For; from any other peer the header changes nothing.
    @Test func forwardedForCountsOnlyFromTrustedProxies() async throws {
        let limited = ["FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "3"]
        try await withFaceSocial(securityEnv(limited.merging(["FACESOCIAL_TRUSTED_PROXIES": "127.0.0.1"]) { $1 })) {
            app in
            let tester = try app.testing(method: .running(port: RedisTestServer.freePort()))
            // The per-minute window must not turn over during the six requests, slow as they may be.
            try await awayFromAMinuteBoundary(leaving: 45)
            func status(_ forwarded: String) async throws -> HTTPStatus {
                var result = HTTPStatus.ok
                try await tester.test(
                    .POST, "/v1/auth/login",
                    headers: ["Content-Type": "application/json", "X-Forwarded-For": forwarded],
                    body: try jsonBody(["email": "nobody@c.example", "password": "wrong-password-here"])
                ) { res in result = res.status }
                return result
            }
            for _ in 0..<3 { #expect(try await status("203.0.113.7") == .unauthorized) }
            #expect(try await status("203.0.113.7") == .tooManyRequests)
            // What the client wrote left of the proxy's entry does not change who it is.
            #expect(try await status("198.51.100.1, 203.0.113.7") == .tooManyRequests)
            #expect(try await status("203.0.113.8") == .unauthorized)
            let denied = try await auditRows(app, action: "auth.login", outcome: "denied")
            #expect(Set(denied.compactMap(\.ip)) == ["203.0.113.7", "203.0.113.8"])
        }
        try await withFaceSocial(securityEnv(limited)) { app in
            let tester = try app.testing(method: .running(port: RedisTestServer.freePort()))
            try await awayFromAMinuteBoundary()
            for (n, forwarded) in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"].enumerated() {
                try await tester.test(
                    .POST, "/v1/auth/login",
                    headers: ["Content-Type": "application/json", "X-Forwarded-For": forwarded],
                    body: try jsonBody(["email": "nobody@c.example", "password": "wrong-password-here"])
                ) { res in #expect(res.status == (n < 3 ? .unauthorized : .tooManyRequests)) }
            }
            let denied = try await auditRows(app, action: "auth.login", outcome: "denied")
            #expect(Set(denied.compactMap(\.ip)) == ["127.0.0.1"])
        }
    }

    @Test func theRunningServerPurgesAuditRowsPastRetention() async throws {
        let env = securityEnv(["FACESOCIAL_AUDIT_RETENTION_DAYS": "1", "FACESOCIAL_AUDIT_PURGE_INTERVAL_SECONDS": "1"])
        try await withFaceSocial(env) { app in
            let sql = app.db as! any SQLDatabase
            let old = UUID()
            // RETURNING shows the row went in: the purge, once a second, may take it before a read.
            let inserted = try await sql.raw(
                """
                INSERT INTO audit_events (id, actor, actor_type, action, resource_type, resource_id, outcome, created_at) \
                VALUES (\(bind: old), 'system', 'system', 'test.old', 'test', 'x', 'success', \
                \(bind: Date().addingTimeInterval(-3 * 86_400))) RETURNING id
                """
            ).all()
            #expect(inserted.count == 1)
            let fresh = try await AuditEvent.query(on: app.db).filter(\.$action != "test.old").count()
            #expect(fresh > 0)
            let gone = try await TestPostgres.waitFor(10) { try await AuditEvent.find(old, on: app.db) == nil }
            #expect(gone, "the periodic purge removed the row past retention")
            #expect(try await AuditEvent.query(on: app.db).filter(\.$action != "test.old").count() == fresh)
        }
    }

    @Test func nativeTLSServesHTTPS() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        let (status, _) = try runTool(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        try #require(status == 0, "openssl made a certificate")
        try await withFaceSocial(["FACESOCIAL_TLS_CERT_PATH": cert, "FACESOCIAL_TLS_KEY_PATH": key]) { app in
            try await checkHTTPS(app)
        }
    }

    func checkHTTPS(_ app: Application) async throws {
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        let port = try #require((app.server as? FaceSocialHTTPServer)?.localAddress?.port)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        let https = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        var plainConfiguration = HTTPClient.Configuration()
        plainConfiguration.timeout = .init(connect: .seconds(5), read: .seconds(5))
        let plain = HTTPClient(eventLoopGroupProvider: .singleton, configuration: plainConfiguration)
        do {
            let response = try await https.get(url: "https://127.0.0.1:\(port)/health").get()
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "X-Content-Type-Options") == "nosniff")
            // Plain HTTP on the TLS port gets no HTTP answer.
            let plainAnswer = try? await plain.get(url: "http://127.0.0.1:\(port)/health").get()
            #expect(plainAnswer == nil)
        } catch {
            Issue.record("HTTPS request failed: \(error)")
        }
        try await https.shutdown()
        try await plain.shutdown()
        await app.server.shutdown()
    }
}
