import Fluent
import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Security: tokens, roles, API keys, audit")
struct SecurityTests {
    @Test func loginRefreshRotationAndReuseRevokesFamily() async throws {
        try await withFaceSocial(securityEnv()) { app in
            let (access, refresh) = try await login(app, adminEmail, adminPassword)
            try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(access)) { res in
                #expect(res.status == .ok)
                #expect(body(res)[path: "data.role"] as? String == "admin")
                expectConforms("GET", "/v1/auth/me", res)
            }
            // Rotation: the first refresh works and returns a new token.
            var second = ""
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh])
            ) { res in
                #expect(res.status == .ok)
                second = body(res)[path: "data.refresh_token"] as? String ?? ""
            }
            #expect(!second.isEmpty && second != refresh)
            // Reusing the first one is refused and revokes the family, the new token included.
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh])
            ) { res in
                #expect(res.status == .unauthorized)
                #expect(errorCode(res) == "UNAUTHORIZED")
                expectConforms("POST", "/v1/auth/refresh", res)
            }
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": second])
            ) { res in #expect(res.status == .unauthorized) }
            #expect(try await auditRows(app, action: "auth.refresh_reuse", outcome: "denied").count >= 1)
            #expect(try await auditRows(app, action: "auth.login", outcome: "success").count == 1)

            // Wrong password: 401 and an audit row.
            try await app.testing().test(
                .POST, "/v1/auth/login", headers: jsonHeaders,
                body: try jsonBody(["email": adminEmail, "password": "wrong-password-here"])
            ) { res in #expect(res.status == .unauthorized) }
            #expect(try await auditRows(app, action: "auth.login", outcome: "denied").count == 1)

            // Logout revokes the family of a fresh sign-in.
            let (_, refresh3) = try await login(app, adminEmail, adminPassword)
            try await app.testing().test(
                .POST, "/v1/auth/logout", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh3])
            ) { res in
                #expect(res.status == .ok)
                expectConforms("POST", "/v1/auth/logout", res)
            }
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh3])
            ) { res in #expect(res.status == .unauthorized) }
        }
    }

    /// Logout, a new password, a role change, disabling and a reused refresh token each end every
    /// access token issued before, on its next request; a fresh sign-in works again.
    @Test func accessTokensEndWithTheSession() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await makeUser(app, "ends@c.example", role: .developer)
            let (adminToken, _) = try await login(app, adminEmail, adminPassword)
            var password = "password-ends@c.example"
            var id = ""
            try await app.testing().test(.GET, "/v1/users", headers: bearer(adminToken)) { res in
                let users = body(res)[path: "data"] as? [[String: Any]] ?? []
                id = users.first { $0["email"] as? String == "ends@c.example" }?["id"] as? String ?? ""
            }
            func me(_ token: String) async throws -> HTTPStatus {
                var status = HTTPStatus.ok
                try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(token)) { res in status = res.status }
                return status
            }
            func patch(_ change: [String: Any]) async throws {
                try await app.testing().test(
                    .PATCH, "/v1/users/\(id)", headers: bearer(adminToken), body: try jsonBody(change)
                ) { res in #expect(res.status == .ok, "\(change): \(res.body.string)") }
            }

            // Logout.
            var (access, refresh) = try await login(app, "ends@c.example", password)
            let (otherSession, _) = try await login(app, "ends@c.example", password)
            #expect(try await me(access) == .ok)
            try await app.testing().test(
                .POST, "/v1/auth/logout", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh])
            ) { res in #expect(res.status == .ok) }
            #expect(try await me(access) == .unauthorized, "access token alive after logout")
            #expect(try await me(otherSession) == .unauthorized, "tokens issued before the logout end too")

            // A new password.
            (access, _) = try await login(app, "ends@c.example", password)
            password = "a-different-long-password"
            try await patch(["password": password])
            #expect(try await me(access) == .unauthorized, "access token alive after a password change")

            // A role change.
            (access, _) = try await login(app, "ends@c.example", password)
            try await patch(["role": "user"])
            #expect(try await me(access) == .unauthorized, "access token alive after a role change")

            // A reused refresh token ends the tokens of the family and every earlier one.
            (access, refresh) = try await login(app, "ends@c.example", password)
            var rotated = ""
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh])
            ) { res in
                #expect(res.status == .ok)
                rotated = body(res)[path: "data.access_token"] as? String ?? ""
            }
            #expect(try await me(rotated) == .ok)
            try await app.testing().test(
                .POST, "/v1/auth/refresh", headers: jsonHeaders, body: try jsonBody(["refresh_token": refresh])
            ) { res in #expect(res.status == .unauthorized) }
            #expect(try await me(access) == .unauthorized, "access token alive after refresh reuse")
            #expect(try await me(rotated) == .unauthorized, "rotated access token alive after refresh reuse")

            // Disabling, then enabling again: the token from before stays ended.
            (access, _) = try await login(app, "ends@c.example", password)
            try await patch(["is_active": false])
            try await patch(["is_active": true])
            #expect(try await me(access) == .unauthorized, "access token alive after disabling")

            // The control: a fresh sign-in works, and the admin's own token was never touched.
            (access, _) = try await login(app, "ends@c.example", password)
            #expect(try await me(access) == .ok)
            #expect(try await me(adminToken) == .ok)
            let ended = try await auditRows(app, action: "auth.token", outcome: "denied")
            #expect(ended.count >= 6)
        }
    }

    /// A wrong password for an existing email and any password for an unknown one take the same
    /// time: the decoy is hashed at the configured cost. Interleaved attempts, medians compared
    /// with a tolerance a busy machine keeps (before the fix the ratio was the cost difference,
    /// 2^(8-4) = 16).
    @Test func unknownAndKnownEmailsTakeTheSameTimeToFail() async throws {
        let env = [
            "FACESOCIAL_BCRYPT_COST": "8", "FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT": "1000",
            "FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS": "1000",
        ]
        try await withFaceSocial(securityEnv(env)) { app in
            func attempt(_ email: String) async throws -> Double {
                let start = ContinuousClock.now
                try await app.testing().test(
                    .POST, "/v1/auth/login", headers: jsonHeaders,
                    body: try jsonBody(["email": email, "password": "wrong-password-here"])
                ) { res in #expect(res.status == .unauthorized) }
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            }
            var known: [Double] = []
            var unknown: [Double] = []
            for n in 0..<15 {
                known.append(try await attempt(adminEmail))
                unknown.append(try await attempt("nobody-\(n)@c.example"))
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let ratio = median(known) / median(unknown)
            print("login timing: median known \(median(known)) ms, unknown \(median(unknown)) ms, ratio \(ratio)")
            #expect(
                ratio > 0.5 && ratio < 2,
                "median known \(median(known)) ms, unknown \(median(unknown)) ms, ratio \(ratio)")
        }
    }

    /// Failed sign-ins per account and per address: past the free ones each attempt must wait
    /// (429 with Retry-After, the right password too); other accounts and addresses go on.
    @Test func failedSignInsAreThrottledPerAccountAndAddress() async throws {
        // A first wait of a minute, so a slow machine cannot outlast it between two requests; the
        // wait running out is checked on the policy itself (loginThrottleWaitsDoubleAndRunOut).
        let env = [
            "FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT": "3", "FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS": "6",
            "FACESOCIAL_LOGIN_FAILURE_DELAY_MS": "60000",
        ]
        try await withFaceSocial(securityEnv(env.merging(["FACESOCIAL_TRUSTED_PROXIES": "127.0.0.1"]) { $1 })) {
            app in
            try await makeUser(app, "victim@c.example", role: .user)
            let tester = try app.testing(method: .running(port: RedisTestServer.freePort()))
            func attempt(_ email: String, _ password: String, from address: String) async throws -> (
                HTTPStatus, String?
            ) {
                var result: (HTTPStatus, String?) = (.ok, nil)
                try await tester.test(
                    .POST, "/v1/auth/login",
                    headers: ["Content-Type": "application/json", "X-Forwarded-For": address],
                    body: try jsonBody(["email": email, "password": password])
                ) { res in
                    result = (res.status, res.headers.first(name: "Retry-After"))
                    if res.status == .tooManyRequests { #expect(errorCode(res) == "RATE_LIMIT_EXCEEDED") }
                }
                return result
            }
            // Per account: three wrong passwords from three addresses, then even the right one waits.
            for n in 1...3 {
                #expect(
                    try await attempt("victim@c.example", "wrong-password-\(n)", from: "203.0.113.\(n)").0
                        == .unauthorized)
            }
            let locked = try await attempt("victim@c.example", "password-victim@c.example", from: "203.0.113.9")
            #expect(locked.0 == .tooManyRequests, "the account was not throttled")
            #expect(Int(locked.1 ?? "") ?? 0 >= 1)
            // Another account from the same addresses is unaffected.
            #expect(try await attempt(adminEmail, adminPassword, from: "203.0.113.1").0 == .ok)

            // Per address: six failures over six emails, then that address waits, another does not.
            for n in 1...6 {
                #expect(
                    try await attempt("guess\(n)@c.example", "wrong-password", from: "198.51.100.7").0 == .unauthorized)
            }
            let blocked = try await attempt("guess7@c.example", "wrong-password", from: "198.51.100.7")
            #expect(blocked.0 == .tooManyRequests, "the address was not throttled")
            #expect(blocked.1 != nil)
            #expect(try await attempt("guess7@c.example", "wrong-password", from: "198.51.100.8").0 == .unauthorized)
            let throttled = try await auditRows(app, action: "auth.login", outcome: "denied")
            #expect(throttled.filter { $0.detail?.contains("too many") == true }.count == 2)
        }
    }

    /// The throttle's policy on its own clock: free failures, then a wait that doubles, runs out,
    /// and is forgotten after a quiet period; a success clears the account, not the address.
    @Test func loginThrottleWaitsDoubleAndRunOut() {
        let policy = LoginThrottle.Policy(freeFailures: 3, baseDelay: 1)
        #expect([1, 2, 3, 4, 5].map { policy.delay(afterFailures: $0) } == [0, 0, 1, 2, 4])
        let throttle = LoginThrottle(account: policy, address: LoginThrottle.Policy(freeFailures: 100))
        let start = Date(timeIntervalSince1970: 1_000_000)
        for n in 0..<3 { throttle.failed(email: "v@x", address: "a", now: start.addingTimeInterval(Double(n))) }
        #expect(throttle.retryAfter(email: "v@x", address: "b", now: start.addingTimeInterval(2.5)) == 1)
        #expect(throttle.retryAfter(email: "v@x", address: "b", now: start.addingTimeInterval(3.1)) == nil)
        #expect(throttle.retryAfter(email: "other@x", address: "a", now: start.addingTimeInterval(2.5)) == nil)
        throttle.failed(email: "v@x", address: "a", now: start.addingTimeInterval(4))
        #expect(throttle.retryAfter(email: "v@x", address: "b", now: start.addingTimeInterval(4.5)) == 2)
        throttle.succeeded(email: "v@x")
        #expect(throttle.retryAfter(email: "v@x", address: "b", now: start.addingTimeInterval(4.5)) == nil)
        // Quiet for forgetAfter: the count starts again from zero.
        let later = start.addingTimeInterval(policy.forgetAfter + 10)
        throttle.failed(email: "w@x", address: "a", now: start)
        throttle.failed(email: "w@x", address: "a", now: start)
        throttle.failed(email: "w@x", address: "a", now: later)
        #expect(throttle.retryAfter(email: "w@x", address: "b", now: later) == nil)
    }

    /// At most FACESOCIAL_PASSWORD_HASH_CONCURRENCY hashes run at once and four times that wait;
    /// a flood beyond answers 429 with Retry-After instead of queueing on every core.
    @Test func concurrentPasswordHashingIsCapped() async throws {
        let env = [
            "FACESOCIAL_BCRYPT_COST": "10", "FACESOCIAL_PASSWORD_HASH_CONCURRENCY": "1",
            "FACESOCIAL_LOGIN_FAILURES_PER_ACCOUNT": "1000", "FACESOCIAL_LOGIN_FAILURES_PER_ADDRESS": "1000",
        ]
        try await withFaceSocial(securityEnv(env)) { app in
            let statuses = try await withThrowingTaskGroup(of: (HTTPStatus, String?).self) { group in
                for n in 0..<20 {
                    group.addTask {
                        var result: (HTTPStatus, String?) = (.ok, nil)
                        try await app.testing().test(
                            .POST, "/v1/auth/login", headers: jsonHeaders,
                            body: try jsonBody(["email": "flood\(n)@c.example", "password": "wrong-password"])
                        ) { res in result = (res.status, res.headers.first(name: "Retry-After")) }
                        return result
                    }
                }
                var all: [(HTTPStatus, String?)] = []
                for try await status in group { all.append(status) }
                return all
            }
            let codes = statuses.map(\.0.code)
            let refused = statuses.filter { $0.0.code == 429 }
            #expect(codes.allSatisfy { $0 == 401 || $0 == 429 }, "\(codes)")
            #expect(codes.filter { $0 == 401 }.count >= 5, "\(codes)")
            #expect(!refused.isEmpty, "20 concurrent hashes with room for 5: \(codes)")
            #expect(refused.allSatisfy { $0.1 == "1" })
        }
    }

    /// Eight parallel refreshes of one token over real connections: exactly one 200, the rest 401,
    /// never 500, and every loser audited. Three rounds, as the race showed in two of three.
    @Test func concurrentRefreshesOfOneTokenHaveOneWinner() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await app.server.start(address: .hostname("127.0.0.1", port: 0))
            let port = try #require((app.server as? FaceSocialHTTPServer)?.localAddress?.port)
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                for round in 0..<3 {
                    let (_, refresh) = try await login(app, adminEmail, adminPassword)
                    let before = try await auditRows(app, action: "auth.refresh_reuse", outcome: "denied").count
                    let payload = String(
                        decoding: try JSONSerialization.data(withJSONObject: ["refresh_token": refresh]), as: UTF8.self)
                    let statuses = try await withThrowingTaskGroup(of: UInt.self) { group in
                        for _ in 0..<8 {
                            group.addTask {
                                let request = try HTTPClient.Request(
                                    url: "http://127.0.0.1:\(port)/v1/auth/refresh", method: .POST,
                                    headers: ["Content-Type": "application/json"], body: .string(payload))
                                let response = try await client.execute(request: request).get()
                                return response.status.code
                            }
                        }
                        var all: [UInt] = []
                        for try await code in group { all.append(code) }
                        return all.sorted()
                    }
                    #expect(statuses == [200] + Array(repeating: 401, count: 7), "round \(round): \(statuses)")
                    let after = try await auditRows(app, action: "auth.refresh_reuse", outcome: "denied").count
                    #expect(after - before == 7, "round \(round): \(after - before) losers audited")
                }
            } catch {
                Issue.record("refresh race failed: \(error)")
            }
            try await client.shutdown()
            await app.server.shutdown()
        }
    }

    /// Row 14 of issue 23: the SQLite file and its folder private to the server's user, a repeated
    /// `image` part refused, HSTS only on answers over HTTPS, `Vary: Origin` on CORS answers.
    @Test func smallTransportAndStorageHardening() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("private-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = securityEnv([
            "FACESOCIAL_DATA_DIR": dir.path, "FACESOCIAL_CORS_ORIGINS": "https://app.example",
            "FACESOCIAL_TRUSTED_PROXIES": "127.0.0.1",
        ])
        try await withFaceSocial(env) { app in
            func mode(_ path: String) throws -> Int {
                (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
            }
            let folderMode = try mode(dir.path)
            #expect(folderMode == 0o700, "data folder mode \(String(folderMode, radix: 8))")
            let fileMode = try mode(dir.appendingPathComponent("facesocial.sqlite").path)
            #expect(fileMode == 0o600, "SQLite file mode \(String(fileMode, radix: 8))")

            // Two `image` parts: 400 naming the field, not a silent pick.
            let image = try testImage("obama.jpg")
            var form = Multipart()
            form.file("image", image)
            form.file("image", image)
            try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                #expect(errorCode(res) == "VALIDATION_FAILED")
                #expect(body(res)[path: "error.details.field"] as? String == "image")
            }
            // CORS answers vary by Origin.
            try await app.testing().test(.GET, "/health", headers: ["Origin": "https://app.example"]) { res in
                #expect(res.headers[.vary].joined(separator: ",").lowercased().contains("origin"))
            }
        }
        // Production over plain HTTP sends no HSTS; through a trusted proxy that spoke HTTPS it does.
        let production = securityEnv([
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "k", count: 40),
            "FACESOCIAL_DATA_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
            "FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS": "false", "FACESOCIAL_TRUSTED_PROXIES": "127.0.0.1",
            "FACESOCIAL_BCRYPT_COST": "10",
        ])
        try await withFaceSocial(production) { app in
            let tester = try app.testing(method: .running(port: RedisTestServer.freePort()))
            try await tester.test(.GET, "/health") { res in
                #expect(res.headers.first(name: "Strict-Transport-Security") == nil, "HSTS over plain HTTP")
            }
            try await tester.test(.GET, "/health", headers: ["X-Forwarded-Proto": "https"]) { res in
                #expect(res.headers.first(name: "Strict-Transport-Security") != nil)
            }
        }
    }

    @Test func forgedAndExpiredTokensAreRefused() async throws {
        let keyDir = FileManager.default.temporaryDirectory.appendingPathComponent("jwt-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: keyDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: keyDir) }
        // An RSA signing key, to try HS/RS confusion against it.
        let rsaKid = "rsa-test"
        let (status, _) = try runTool(
            "/usr/bin/openssl",
            [
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                keyDir.appendingPathComponent("\(rsaKid).pem").path,
            ])
        #expect(status == 0)

        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withFaceSocial(
            securityEnv(["FACESOCIAL_JWT_KEY_DIR": keyDir.path, "FACESOCIAL_DATA_DIR": dataDir.path])
        ) {
            app in
            let ring = try #require(app.security?.keyRing)
            #expect(ring.signingKid == rsaKid)
            let (access, _) = try await login(app, adminEmail, adminPassword)
            let header = try #require(Data(base64URL: String(access.split(separator: ".")[0])))
            #expect(String(decoding: header, as: UTF8.self).contains("RS256"))
            try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(access)) { res in
                #expect(res.status == .ok)
            }
            let admin = try #require(try await User.query(on: app.db).first())
            let sub = try admin.requireID().uuidString.lowercased()

            // JWKS: the RSA public key only; the HMAC secret is never published.
            var rsaPublicPEM = ""
            try await app.testing().test(.GET, "/.well-known/jwks.json") { res in
                #expect(res.status == .ok)
                expectConforms("GET", "/.well-known/jwks.json", res)
                let keys = body(res)["keys"] as? [[String: String]] ?? []
                #expect(keys.map { $0["kid"] } == [rsaKid])
                #expect(keys.first?["kty"] == "RSA" && keys.first?["d"] == nil)
                #expect(!res.body.string.contains("hs256"))
            }
            rsaPublicPEM = try runTool(
                "/usr/bin/openssl", ["pkey", "-pubout", "-in", keyDir.appendingPathComponent("\(rsaKid).pem").path]
            ).1
            #expect(rsaPublicPEM.contains("BEGIN PUBLIC KEY"))
            let hsKid = try #require(ring.keys.values.first { $0.algorithm == "HS256" }?.kid)
            // The HS256 key is this installation's own secret (row 13).
            let secret = Data(try InstallationSecrets.loadOrCreate(in: dataDir).jwtSecret.utf8)

            var tokens: [String: String] = [:]
            // HS/RS confusion: HS256 keyed with the RSA public key, under the RSA key's kid.
            tokens["hs-rs confusion"] = try forgeToken(
                header: ["alg": "HS256", "kid": rsaKid, "typ": "JWT"], payload: validPayload(sub: sub),
                sign: hmacSHA256(Data(rsaPublicPEM.utf8)))
            tokens["alg none"] = try forgeToken(
                header: ["alg": "none", "kid": hsKid, "typ": "JWT"], payload: validPayload(sub: sub)
            ) { _ in Data() }
            tokens["alg none, any signature"] = try forgeToken(
                header: ["alg": "none", "kid": hsKid], payload: validPayload(sub: sub)
            ) { _ in Data([1, 2, 3]) }
            // JWTKit alone would verify this with its default key; the ring refuses unknown kids.
            tokens["unknown kid"] = try forgeToken(
                header: ["alg": "HS256", "kid": "not-a-key"], payload: validPayload(sub: sub), sign: hmacSHA256(secret))
            tokens["no kid"] = try forgeToken(
                header: ["alg": "HS256"], payload: validPayload(sub: sub), sign: hmacSHA256(secret))
            tokens["bad signature"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid], payload: validPayload(sub: sub),
                sign: hmacSHA256(Data("some-other-secret-of-enough-length!!".utf8)))
            tokens["expired"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"],
                payload: validPayload(sub: sub, exp: Date().addingTimeInterval(-60)), sign: hmacSHA256(secret))
            // Times and audience: not yet valid, issued in the future, a foreign or missing
            // audience, and a lifetime beyond the configured one (ten years).
            var early = validPayload(sub: sub)
            early["nbf"] = Date().addingTimeInterval(3600).timeIntervalSince1970
            tokens["nbf an hour ahead"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"], payload: early, sign: hmacSHA256(secret))
            var future = validPayload(sub: sub, exp: Date().addingTimeInterval(7200))
            future["iat"] = Date().addingTimeInterval(3600).timeIntervalSince1970
            tokens["iat an hour ahead"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"], payload: future, sign: hmacSHA256(secret))
            var foreign = validPayload(sub: sub)
            foreign["aud"] = "another-service"
            tokens["foreign aud"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"], payload: foreign, sign: hmacSHA256(secret))
            var noAudience = validPayload(sub: sub)
            noAudience["aud"] = nil
            tokens["no aud"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"], payload: noAudience, sign: hmacSHA256(secret))
            tokens["exp ten years ahead"] = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"],
                payload: validPayload(sub: sub, exp: Date().addingTimeInterval(10 * 365 * 86_400)),
                sign: hmacSHA256(secret))
            var parts = access.split(separator: ".").map(String.init)
            parts[1] = try JSONSerialization.data(withJSONObject: validPayload(sub: UUID().uuidString)).base64URLEncoded
            tokens["tampered payload"] = parts.joined(separator: ".")
            tokens["garbage"] = "not.a.jwt"

            // The control: the same forging code with the right key and kid is accepted.
            let control = try forgeToken(
                header: ["alg": "HS256", "kid": hsKid, "typ": "JWT"], payload: validPayload(sub: sub),
                sign: hmacSHA256(secret))
            try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(control)) { res in
                #expect(res.status == .ok, "control token refused: \(res.body.string)")
            }
            for (name, token) in tokens {
                try await app.testing().test(.GET, "/v1/auth/me", headers: bearer(token)) { res in
                    #expect(res.status == .unauthorized, "\(name) was accepted")
                    #expect(errorCode(res) == "UNAUTHORIZED")
                }
            }
            #expect(try await auditRows(app, action: "auth.token", outcome: "denied").count >= tokens.count)
        }
    }

    /// Row 13: the development profile listens on loopback and signs with a secret of its own,
    /// made once per installation, so the published development secret signs nothing.
    @Test func developmentMakesItsOwnSecretsAndListensOnLoopback() async throws {
        #expect(try testConfig().host == "127.0.0.1")
        #expect(try testConfig(["FACESOCIAL_HOST": "0.0.0.0"]).host == "0.0.0.0")
        let production = try AppConfig.fromEnvironment([
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "p", count: 40),
            "FACESOCIAL_DATA_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
        ])
        #expect(production.host == "0.0.0.0")

        let first = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString)")
        let second = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: first)
            try? FileManager.default.removeItem(at: second)
        }
        let published = Data(AppConfig.developmentJWTSecret.utf8)
        var secrets: InstallationSecrets.Stored?
        // Twice on one data folder (a restart), then on another installation.
        for dir in [first, first, second] {
            try await withFaceSocial(securityEnv(["FACESOCIAL_DATA_DIR": dir.path])) { app in
                #expect(app.http.server.configuration.hostname == "127.0.0.1")
                let file = dir.appendingPathComponent(InstallationSecrets.fileName)
                let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
                #expect(mode == 0o600)
                let stored = try InstallationSecrets.loadOrCreate(in: dir)
                #expect(stored.jwtSecret != AppConfig.developmentJWTSecret)
                #expect(stored.dataKey != AppConfig.developmentDataKey)
                if dir == first {
                    #expect(secrets == nil || secrets == stored, "a restart made new secrets")
                    secrets = stored
                } else {
                    #expect(stored.jwtSecret != secrets?.jwtSecret && stored.dataKey != secrets?.dataKey)
                }
                let ring = try #require(app.security?.keyRing)
                let hsKid = try #require(ring.keys.values.first { $0.algorithm == "HS256" }?.kid)
                let admin = try #require(try await User.query(on: app.db).first())
                let sub = try admin.requireID().uuidString.lowercased()
                let header: [String: Any] = ["alg": "HS256", "kid": hsKid, "typ": "JWT"]
                let forged = try forgeToken(
                    header: header, payload: validPayload(sub: sub), sign: hmacSHA256(published))
                try await app.testing().test(.GET, "/v1/users", headers: bearer(forged)) { res in
                    #expect(res.status == .unauthorized, "the published development secret signed an admin token")
                }
                // The control: the same token signed with the installation's secret is accepted.
                let own = try forgeToken(
                    header: header, payload: validPayload(sub: sub), sign: hmacSHA256(Data(stored.jwtSecret.utf8)))
                try await app.testing().test(.GET, "/v1/users", headers: bearer(own)) { res in
                    #expect(res.status == .ok, "\(res.body.string)")
                }
            }
        }
        // Rows sealed under the published data key (older installations) still open, new rows
        // are sealed under the installation's key.
        let resolved = try testConfig(["FACESOCIAL_DATA_DIR": first.path]).withInstallationSecrets()
        let cipher = try DataCipher(config: resolved)
        let publishedID = DataCipher.fingerprint(SymmetricKey(data: Data(base64Encoded: AppConfig.developmentDataKey)!))
        #expect(cipher.currentKeyID != publishedID && cipher.keyIDs.contains(publishedID))
    }

    @Test func rolesAndTenantIsolation() async throws {
        try await withFaceSocial(securityEnv()) { app in
            try await makeUser(app, "alice@a.example", role: .user, collections: ["tenant-a"])
            try await makeUser(app, "dev@a.example", role: .developer, collections: ["tenant-a"])
            let (userToken, _) = try await login(app, "alice@a.example", "password-alice@a.example")
            let (devToken, _) = try await login(app, "dev@a.example", "password-dev@a.example")
            let (adminToken, _) = try await login(app, adminEmail, adminPassword)

            // A user cannot reach admin routes.
            for (method, path) in [(HTTPMethod.GET, "/v1/users"), (.GET, "/v1/audit"), (.POST, "/v1/users")] {
                try await app.testing().test(
                    method, path, headers: bearer(userToken),
                    body: try jsonBody(["email": "x@y.z", "password": "long-enough-pass", "role": "admin"])
                ) { res in
                    #expect(res.status == .forbidden, "\(method) \(path)")
                    #expect(errorCode(res) == "FORBIDDEN")
                }
            }
            // Anonymous callers get 401 on protected routes.
            try await app.testing().test(.GET, "/v1/collections/tenant-a/api-keys") { res in
                #expect(res.status == .unauthorized)
            }
            // Their own tenant: readable; another tenant's: forbidden.
            try await app.testing().test(.GET, "/v1/collections/tenant-a/api-keys", headers: bearer(userToken)) {
                res in
                #expect(res.status == .ok)
                expectConforms("GET", "/v1/collections/{collection}/api-keys", res)
            }
            try await app.testing().test(.GET, "/v1/collections/tenant-b/api-keys", headers: bearer(userToken)) {
                res in #expect(res.status == .forbidden)
            }
            // A user may read but not write its collection.
            try await app.testing().test(
                .POST, "/v1/collections/tenant-a/api-keys", headers: bearer(userToken),
                body: try jsonBody(["name": "k", "scopes": ["face:analyze"]])
            ) { res in #expect(res.status == .forbidden) }

            // A developer mints a key for its collection, shown once.
            var key = ""
            var keyID = ""
            try await app.testing().test(
                .POST, "/v1/collections/tenant-a/api-keys", headers: bearer(devToken),
                body: try jsonBody(["name": "mobile app", "scopes": ["collections:read", "face:analyze"]])
            ) { res in
                #expect(res.status == .created)
                expectConforms("POST", "/v1/collections/{collection}/api-keys", res)
                key = body(res)[path: "data.key"] as? String ?? ""
                keyID = body(res)[path: "data.id"] as? String ?? ""
            }
            #expect(key.hasPrefix("fsk_"))
            // Stored hashed: the key itself is nowhere in the table.
            let stored = try #require(try await APIKey.query(on: app.db).first())
            #expect(stored.keyHash != key && !stored.keyHash.contains(key))
            try await app.testing().test(.GET, "/v1/collections/tenant-a/api-keys", headers: bearer(devToken)) { res in
                #expect(res.status == .ok)
                #expect(!res.body.string.contains(key))
            }
            // The key reads its collection and nothing else.
            let keyHeaders: HTTPHeaders = ["x-api-key": key]
            try await app.testing().test(.GET, "/v1/collections/tenant-a/api-keys", headers: keyHeaders) { res in
                #expect(res.status == .ok)
            }
            try await app.testing().test(.GET, "/v1/collections/tenant-b/api-keys", headers: keyHeaders) { res in
                #expect(res.status == .forbidden)
            }
            try await app.testing().test(.GET, "/v1/audit", headers: keyHeaders) { res in
                #expect(res.status == .forbidden)
            }
            try await app.testing().test(.GET, "/v1/auth/me", headers: keyHeaders) { res in
                #expect(body(res)[path: "data.collections"] as? [String] == ["tenant-a"])
            }
            // Revoked: the key stops working.
            try await app.testing().test(
                .DELETE, "/v1/collections/tenant-a/api-keys/\(keyID)", headers: bearer(devToken)
            ) { res in
                #expect(res.status == .ok)
                expectConforms("DELETE", "/v1/collections/{collection}/api-keys/{key_id}", res)
            }
            try await app.testing().test(.GET, "/v1/collections/tenant-a/api-keys", headers: keyHeaders) { res in
                #expect(res.status == .unauthorized)
            }

            // The denials are audited, and the admin reads them with filters and paging.
            try await app.testing().test(
                .GET, "/v1/audit?action=authz.denied&outcome=denied&limit=2", headers: bearer(adminToken)
            ) { res in
                #expect(res.status == .ok)
                expectConforms("GET", "/v1/audit", res)
                let data = body(res)
                #expect((data[path: "data.total"] as? Int ?? 0) >= 5)
                #expect((data[path: "data.items"] as? [Any])?.count == 2)
                #expect(data[path: "data.items.0.outcome"] as? String == "denied")
                #expect(data[path: "data.items.0.request_id"] as? String != nil)
            }
            #expect(try await auditRows(app, action: "auth.api_key", outcome: "denied").count == 1)
            #expect(try await auditRows(app, action: "api_key.create", outcome: "success").count == 1)
            try await app.testing().test(.GET, "/v1/audit?since=yesterday", headers: bearer(adminToken)) { res in
                #expect(res.status == .badRequest)
                #expect(errorCode(res) == "VALIDATION_FAILED")
            }
        }
    }

    @Test func auditIsAppendOnlyAndPurgedByRetention() async throws {
        try await withFaceSocial(securityEnv()) { app in
            let rows = try await AuditEvent.query(on: app.db).all()
            let row = try #require(rows.first)
            row.outcome = "tampered"
            await #expect(throws: (any Error).self) { try await row.save(on: app.db) }
            await #expect(throws: (any Error).self) { try await row.delete(on: app.db) }
            // Retention: nothing is younger than "now + 2 days − 1 day".
            let purged = try await AuditLog.purge(
                on: app.db, retentionDays: 1, now: Date().addingTimeInterval(2 * 86_400))
            #expect(purged == rows.count)
            #expect(try await AuditEvent.query(on: app.db).count() == 0)
        }
    }

    @Test func anonymousAnalysisFollowsTheSetting() async throws {
        let image = try testImage("obama.jpg")
        try await withFaceSocial(securityEnv(["FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS": "false"])) { app in
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"], body: ByteBuffer(bytes: image)
            ) { res in
                #expect(res.status == .unauthorized)
                #expect(res.headers.first(name: "X-Content-Type-Options") == "nosniff")
                #expect(res.headers.first(name: "X-Frame-Options") == "DENY")
            }
            let (token, _) = try await login(app, adminEmail, adminPassword)
            var headers = bearer(token)
            headers.replaceOrAdd(name: "Content-Type", value: "image/jpeg")
            try await app.testing().test(.POST, "/v1/detect", headers: headers, body: ByteBuffer(bytes: image)) { res in
                #expect(res.status == .ok)
                #expect(res.headers.first(name: "X-RateLimit-Limit") == "600")
            }
        }
    }

    @Test func productionRefusesInsecureSettings() throws {
        let secure = [
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "k", count: 40),
            "FACESOCIAL_DATA_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
        ]
        // Production defaults to no anonymous analysis.
        var env = secure
        let config = try AppConfig.fromEnvironment(env)
        #expect(!config.security.allowAnonymousAnalysis)
        env["FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS"] = "true"
        #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment(env) }
        env["FACESOCIAL_ALLOW_ANONYMOUS_ANALYSIS"] = "false"
        env["FACESOCIAL_ADMIN_EMAIL"] = "a@b.c"
        env["FACESOCIAL_ADMIN_PASSWORD"] = SecurityConfig.developmentAdminPassword
        #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment(env) }
        env["FACESOCIAL_ADMIN_PASSWORD"] = "short"
        #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment(env) }
        // Development keeps anonymous analysis on by default.
        #expect(try AppConfig.fromEnvironment([:]).security.allowAnonymousAnalysis)
    }

    @Test func keyRotationKeepsOldKeysVerifying() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rotate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try KeyRing.rotate(directory: dir, keep: 2)
        let ringA = try await KeyRing.load(secret: String(repeating: "s", count: 32), keyDirectory: dir)
        #expect(ringA.signingKid == first.kid)
        let claims = AccessClaims(
            sub: .init(value: "u"), exp: .init(value: Date().addingTimeInterval(60)), iat: .init(value: Date()),
            jti: .init(value: "j"), iss: .init(value: "facesocial"), role: "user", typ: "access",
            aud: .init(value: "facesocial-api"))
        let old = try await ringA.sign(claims)
        let second = try KeyRing.rotate(directory: dir, keep: 2, now: Date().addingTimeInterval(1))
        let ringB = try await KeyRing.load(secret: String(repeating: "s", count: 32), keyDirectory: dir)
        #expect(ringB.signingKid == second.kid)
        _ = try await ringB.verify(old)  // the previous key still verifies
        #expect(ringB.jwks["keys"]?.count == 2)
        _ = try KeyRing.rotate(directory: dir, keep: 2, now: Date().addingTimeInterval(2))
        let ringC = try await KeyRing.load(secret: String(repeating: "s", count: 32), keyDirectory: dir)
        await #expect(throws: TokenError.unknownKey) { try await ringC.verify(old) }
    }
}
