import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Security with a real Redis: shared limits, outages, cache, privacy", .serialized)
struct RedisSecurityTests {
    @Test func limitHoldsAcrossTwoInstancesSharingRedis() async throws {
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let env = securityEnv(["REDIS_URL": redis.url, "FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "5"])
        try await withFaceSocial(env) { first in
            try await withFaceSocial(env) { second in try await expectOneIPLimit(of: 5, across: first, second) }
        }
        // The control: without Redis each instance counts alone, so the same traffic passes.
        let local = securityEnv(["FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "5"])
        try await withFaceSocial(local) { first in
            try await withFaceSocial(local) { second in
                try await awayFromAMinuteBoundary(leaving: 30)  // generous: the suite runs in parallel
                for app in [first, first, first, second, second, second] {
                    try await app.testing().test(.GET, "/v1/auth/me") { res in
                        #expect(res.status != .tooManyRequests)
                    }
                }
            }
        }
    }

    @Test func redisKilledMidwayDegradesWithoutFailingRequests() async throws {
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let image = try testImage("obama.jpg")
        try await withFaceSocial(securityEnv(["REDIS_URL": redis.url])) { app in
            let cache = try #require(app.security?.cache)
            func detect() async throws -> HTTPStatus {
                var status = HTTPStatus.internalServerError
                try await app.testing().test(
                    .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"], body: ByteBuffer(bytes: image)
                ) { res in status = res.status }
                return status
            }
            #expect(try await detect() == .ok)
            #expect(try await detect() == .ok)
            #expect(cache.statistics.hits == 1 && cache.statistics.misses == 1)
            try await app.testing().test(.GET, "/health/ready") { res in
                #expect(body(res)[path: "data.checks.cache.detail"] as? String == "redis")
            }

            redis.stop()
            var statuses: [HTTPStatus] = []
            for _ in 0..<4 { statuses.append(try await detect()) }
            try await app.testing().test(.GET, "/v1/auth/me") { res in statuses.append(res.status) }
            #expect(statuses.allSatisfy { $0.code < 500 }, "\(statuses)")
            #expect(statuses.prefix(4).allSatisfy { $0 == .ok })
            try await app.testing().test(.GET, "/health/ready") { res in
                #expect(res.status == .ok)
                #expect(body(res)[path: "data.status"] as? String == "degraded")
                #expect(body(res)[path: "data.checks.cache.status"] as? String == "degraded")
                expectConforms("GET", "/health/ready", res)
            }
            // Local fallback cache serves repeats while Redis is away.
            #expect(cache.statistics.hits >= 3)

            try redis.start()
            try await app.testing().test(.GET, "/health/ready") { res in
                #expect(body(res)[path: "data.status"] as? String == "ready")
            }
            #expect(try await detect() == .ok)
        }
    }

    @Test func cacheKeysIgnoreNothingThatMatters() {
        let image: [UInt8] = [1, 2, 3]
        let base = ResultCache.key(route: "detect", image: image, models: "m@1", parameters: ["a": "1"])
        #expect(base == ResultCache.key(route: "detect", image: image, models: "m@1", parameters: ["a": "1"]))
        #expect(base != ResultCache.key(route: "detect", image: [1, 2, 4], models: "m@1", parameters: ["a": "1"]))
        #expect(base != ResultCache.key(route: "detect", image: image, models: "m@2", parameters: ["a": "1"]))
        #expect(base != ResultCache.key(route: "detect", image: image, models: "m@1", parameters: ["a": "2"]))
        #expect(base != ResultCache.key(route: "analyze", image: image, models: "m@1", parameters: ["a": "1"]))
        // A request's key is that key while the cache is on, and none (no hashing) while it is off.
        let on = ResultCache(ttl: 60, maxEntries: 10, redis: nil)
        let off = ResultCache(ttl: 0, maxEntries: 10, redis: nil)
        #expect(on.requestKey(route: "detect", image: image, models: "m@1", parameters: ["a": "1"]) == base)
        #expect(off.requestKey(route: "detect", image: image, models: "m@1", parameters: ["a": "1"]) == nil)
    }

    /// Runs the image-bearing flows with Redis and a kept SQLite file, then scans the database, a
    /// Redis snapshot and every log line captured in this test process for image signatures.
    @Test func noImageBytesInDatabaseRedisOrLogs() async throws {
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("privacy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = folder.appendingPathComponent("privacy.sqlite")
        let jpeg = try testImage("obama.jpg")
        let png = try testImage("tom_hanks.png")
        try await withFaceSocial(securityEnv(["REDIS_URL": redis.url, "DATABASE_URL": "sqlite://\(database.path)"])) {
            app in
            let (token, _) = try await login(app, adminEmail, adminPassword)
            for (bytes, type) in [(jpeg, "image/jpeg"), (png, "image/png")] {
                for path in ["/v1/detect", "/v1/analyze?analyses=attributes,quality,liveness", "/v1/analyze"] {
                    var headers = bearer(token)
                    headers.replaceOrAdd(name: "Content-Type", value: type)
                    try await app.testing().test(.POST, path, headers: headers, body: ByteBuffer(bytes: bytes)) {
                        res in #expect(res.status == .ok, "\(path): \(res.body.string.prefix(200))")
                    }
                }
            }
            // Something was cached in Redis, and it holds no image.
            let keys = try await app.security!.redis!.client.send(["KEYS", "fs:result:*"])
            #expect((keys.array?.count ?? 0) >= 2)
            _ = try await app.security!.redis!.client.send(["SAVE"])
        }
        let dump = try [UInt8](Data(contentsOf: redis.folder.appendingPathComponent("dump.rdb")))
        let sqlite = try [UInt8](Data(contentsOf: database))
        #expect(dump.count > 100 && sqlite.count > 1000)
        #expect(Self.imageSignatures(in: dump).isEmpty, "Redis: \(Self.imageSignatures(in: dump))")
        #expect(Self.imageSignatures(in: sqlite).isEmpty, "SQLite: \(Self.imageSignatures(in: sqlite))")
        let logs = LogCapture.lines.withLock { $0.joined(separator: "\n") }
        #expect(!logs.isEmpty)
        #expect(Self.imageSignatures(in: Array(logs.utf8)).isEmpty)
        // Images in text form: base64 openings and byte arrays.
        for marker in ["/9j/", "iVBORw0KGgo", "UklGR", "255, 216, 255", "137, 80, 78, 71"] {
            #expect(!logs.contains(marker), "logs contain \(marker)")
        }
        // The scan itself finds a planted signature.
        #expect(!Self.imageSignatures(in: [0, 1] + Array(jpeg.prefix(8)) + [UInt8](repeating: 0, count: 8)).isEmpty)
    }

    static func imageSignatures(in bytes: [UInt8]) -> [String] {
        var found: [String] = []
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var i = 0
        while i + 12 <= bytes.count {
            if bytes[i] == 0xFF, bytes[i + 1] == 0xD8, bytes[i + 2] == 0xFF { found.append("JPEG@\(i)") }
            if Array(bytes[i..<(i + 8)]) == png { found.append("PNG@\(i)") }
            if bytes[i..<(i + 4)].elementsEqual("RIFF".utf8), bytes[(i + 8)..<(i + 12)].elementsEqual("WEBP".utf8) {
                found.append("WEBP@\(i)")
            }
            i += 1
        }
        return found
    }
}
