import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The package root, found from this file's path (Tests/FaceSocialServerTests/…).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Real photos from the shared test data (never copied into the repository).
func testImage(_ name: String) throws -> [UInt8] {
    let folder =
        ProcessInfo.processInfo.environment["FACESOCIAL_TESTDATA"]
        ?? packageRoot.appendingPathComponent("../shared/testdata").path
    return try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder).appendingPathComponent(name)))
}

/// A development configuration over the installed models and a throw-away SQLite file.
func testConfig(_ extra: [String: String] = [:]) throws -> AppConfig {
    _ = LogCapture.installed
    var env = ProcessInfo.processInfo.environment
    env["FACESOCIAL_MODEL_DIR"] = env["FACESOCIAL_MODEL_DIR"] ?? packageRoot.appendingPathComponent("var/models").path
    env["FACESOCIAL_MODEL_MANIFEST"] =
        env["FACESOCIAL_MODEL_MANIFEST"]
        ?? packageRoot.appendingPathComponent("models/manifest.json").path
    env["FACESOCIAL_DATA_DIR"] =
        FileManager.default.temporaryDirectory
        .appendingPathComponent("facesocial-tests-\(UUID().uuidString)").path
    env["FACESOCIAL_PROFILE"] = "development"
    // The whole suite runs in parallel against one shared registry, a load spike far beyond a
    // real client's; admission limits get their own tests with small values.
    env["FACESOCIAL_QUEUE_LIMIT"] = "100000"
    // Every test app has a known admin (cheap bcrypt) for the routes that need a principal.
    env["FACESOCIAL_BCRYPT_COST"] = "4"
    env["FACESOCIAL_ADMIN_EMAIL"] = "admin@example.com"
    env["FACESOCIAL_ADMIN_PASSWORD"] = "correct-horse-battery"
    env["FACESOCIAL_QUEUE_TIMEOUT_MS"] = "600000"
    // Models compile as the manifest says (bf16 where allowed, LATENCY): what a tuning measurement
    // picks depends on how busy the machine is, and tests must not. TuningTests and
    // `systemModelsShowTheMeasuredTuning` cover tuning itself.
    env["FACESOCIAL_TUNE"] = env["FACESOCIAL_TUNE"] ?? "off"
    for (key, value) in extra { env[key] = value }
    return try AppConfig.fromEnvironment(env)
}

/// One registry for the whole test run, so each model is compiled once.
let sharedRegistry: Result<ModelRegistry, any Error> = Result { try FaceSocialApp.makeRegistry(try testConfig()) }

/// Runs `body` against a configured application and shuts it down afterwards.
func withFaceSocial(
    _ extra: [String: String] = [:], registry: ModelRegistry? = nil, _ body: (Application) async throws -> Void
) async throws {
    let config = try testConfig(extra)
    let app = try await Application.make(.testing)
    do {
        try await FaceSocialApp.configure(app, config: config, registry: try registry ?? sharedRegistry.get())
        try await body(app)
    } catch {
        try? await app.asyncShutdown()
        throw error
    }
    try await app.asyncShutdown()
    // A data folder the caller named is the caller's (a restart on it, say); ours goes.
    if extra["FACESOCIAL_DATA_DIR"] == nil { try? FileManager.default.removeItem(at: config.dataDirectory) }
}

/// A multipart/form-data body with files and fields.
struct Multipart {
    let boundary = "facesocial-\(UUID().uuidString)"
    var buffer = ByteBuffer()

    mutating func file(_ name: String, _ bytes: [UInt8], filename: String = "upload.jpg", type: String = "image/jpeg") {
        buffer.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(type)\r\n\r\n"
        )
        buffer.writeBytes(bytes)
        buffer.writeString("\r\n")
    }

    mutating func field(_ name: String, _ value: String) {
        buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
    }

    func body() -> ByteBuffer {
        var out = buffer
        out.writeString("--\(boundary)--\r\n")
        return out
    }

    var headers: HTTPHeaders { ["Content-Type": "multipart/form-data; boundary=\(boundary)"] }
}

/// The JSON of a response body.
func json(_ response: TestingHTTPResponse) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
    return try #require(object as? [String: Any])
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String) -> Any? {
        var current: Any? = self
        for key in path.split(separator: ".") {
            if let index = Int(key), let array = current as? [Any] {
                current = array.indices.contains(index) ? array[index] : nil
            } else {
                current = (current as? [String: Any])?[String(key)]
            }
        }
        return current
    }
}

/// The JSON body, or an empty object when the body is not JSON (so expectations on it fail).
func body(_ response: TestingHTTPResponse) -> [String: Any] {
    (try? json(response)) ?? [:]
}

/// The error code of an error envelope.
func errorCode(_ response: TestingHTTPResponse) -> String? {
    body(response)[path: "error.code"] as? String
}

/// The served OpenAPI document as a validator, built once.
let openAPI: Result<SchemaValidator, any Error> = Result { try SchemaValidator(OpenAPIDocument.data()) }

/// Records an issue for every way a response differs from its documented schema.
func expectConforms(_ method: String, _ path: String, _ response: TestingHTTPResponse) {
    do {
        let problems = try openAPI.get().check(
            method: method, path: path, status: Int(response.status.code), body: Data(response.body.readableBytesView))
        #expect(problems.isEmpty, "\(method) \(path) \(response.status.code): \(problems.prefix(5))")
    } catch {
        Issue.record("OpenAPI document unusable: \(error)")
    }
}
