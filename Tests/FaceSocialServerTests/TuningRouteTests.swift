import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("CPU tuning through the server")
struct TuningRouteTests {
    @Test func systemModelsShowTheMeasuredTuningAndTheCacheKeepsIt() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-tuning-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("tuning.json")
        let env = ["FACESOCIAL_TUNE": "auto", "FACESOCIAL_TUNING_FILE": file.path]
        let registry = try FaceSocialApp.makeRegistry(try testConfig(env))
        try await withFaceSocial(env, registry: registry) { app in
            try await app.testing().test(.GET, "/system/models") { res in
                #expect(res.status == .ok)
                expectConforms("GET", "/system/models", res)
                let models = body(res)[path: "data.models"] as? [[String: Any]] ?? []
                let yunet = try #require(models.first { $0["id"] as? String == "yunet" })
                let tuning = try #require(yunet["tuning"] as? [String: Any])
                #expect(tuning["source"] as? String == "measured")
                let candidates = tuning["candidates"] as? [[String: Any]] ?? []
                // float32 and, where the CPU has native bf16, bf16; each with both hints.
                #expect(candidates.count == (CPUIdentity.current.nativeBF16 ? 4 : 2))
                #expect(candidates.allSatisfy { ($0["throughput_per_s"] as? Double ?? 0) > 0 })
                #expect(["f32", "bf16"].contains(tuning["precision"] as? String ?? ""))
                #expect(["LATENCY", "THROUGHPUT"].contains(tuning["hint"] as? String ?? ""))
            }
        }
        // The next start on this CPU reads the choice instead of measuring again.
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text.contains("|yunet|"))
        let again = try FaceSocialApp.makeRegistry(try testConfig(env))
        try await again.load("yunet")
        #expect(await again.status("yunet")?.tuning?.source == .cached)
        #expect(await again.status("yunet")?.tuning?.chosen == (await registry.status("yunet"))?.tuning?.chosen)
    }
}
