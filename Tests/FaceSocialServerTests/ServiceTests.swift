import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("Health and configuration")
struct ServiceTests {
    @Test func healthAndReadiness() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.GET, "/health") { res in
                #expect(res.status == .ok)
                #expect(body(res)[path: "data.status"] as? String == "ok")
            }
            try await app.testing().test(.GET, "/health/ready") { res in
                #expect(res.status == .ok, "\(res.body.string)")
                expectConforms("GET", "/health/ready", res)
                let body = try json(res)
                #expect(body[path: "data.status"] as? String == "ready")
                #expect(body[path: "data.checks.database.status"] as? String == "ok")
                #expect(body[path: "data.checks.model:yunet.status"] as? String == "ok")
            }
        }
    }

    @Test func productionRefusesDefaultSecrets() throws {
        #expect(throws: ConfigError.insecureDefault(variable: "JWT_SECRET_KEY")) {
            try testConfig(["FACESOCIAL_PROFILE": "production"])
        }
        let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        #expect(throws: ConfigError.insecureDefault(variable: "FACESOCIAL_DATA_KEY")) {
            try testConfig(["FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "k", count: 40)])
        }
        #expect(throws: ConfigError.self) {
            try testConfig(["FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": "short", "FACESOCIAL_DATA_KEY": key])
        }
        let secure = [
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "k", count: 40),
            "FACESOCIAL_DATA_KEY": key,
        ]
        // The tests' cheap bcrypt cost (4) is refused in production (issue 23 row 8).
        #expect(throws: ConfigError.self) { try testConfig(secure) }
        let config = try testConfig(secure.merging(["FACESOCIAL_BCRYPT_COST": "10"]) { $1 })
        #expect(config.jsonLogs)
    }

    @Test func badValuesAreRefused() {
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_PORT": "99999"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_PROFILE": "staging"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_OV_PERFORMANCE_HINT": "FAST"]) }
    }

    @Test func requestIDsAreSanitised() {
        #expect(RequestContextMiddleware.acceptable("abc-123_x.y") == "abc-123_x.y")
        #expect(RequestContextMiddleware.acceptable("bad id\nInjected: 1") == nil)
        #expect(RequestContextMiddleware.acceptable(String(repeating: "a", count: 200)) == nil)
    }
}

@Suite("HTTP metrics")
struct HTTPMetricsTests {
    @Test func requestsAreCountedByRoutePatternAndStatus() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"],
                body: ByteBuffer(bytes: try testImage("obama.jpg"))
            ) { res in #expect(res.status == .ok) }
            try await app.testing().test(
                .POST, "/v1/detect", headers: ["Content-Type": "image/jpeg"], body: ByteBuffer(string: "not an image")
            ) { res in #expect(res.status == .unprocessableEntity) }
            try await app.testing().test(.GET, "/no/such/route") { res in #expect(res.status == .notFound) }
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.status == .ok)
                let text = res.body.string
                #expect(text.contains(#"http_requests_total{method="POST",route="/v1/detect",status="200"} 1"#))
                #expect(text.contains(#"http_requests_total{method="POST",route="/v1/detect",status="422"} 1"#))
                #expect(text.contains(#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#))
                #expect(text.contains(#"http_request_duration_seconds_bucket{method="POST",route="/v1/detect""#))
                // The SQLite pool's capacity; on one CPU pool per model the fallback family is
                // declared without samples (the alert rules and the dashboard read both).
                #expect(text.contains(#"db_pool_connections{database="primary",state="max"}"#))
                #expect(text.contains("# TYPE model_fallback_total counter"))
            }
        }
    }
}
