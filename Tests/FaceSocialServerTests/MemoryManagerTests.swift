import FaceKit
import Foundation
import ModelRuntime
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The memory manager against the real models with small pools, so that eviction, fallback and
/// refusal happen with the real files. Each test builds its own manager: budgets are per manager.
@Suite("Memory manager")
struct MemoryManagerTests {
    /// A fresh app whose manager has the given memory variables.
    func withManager(_ env: [String: String], _ body: (Application, ModelManager) async throws -> Void) async throws {
        let manager = try FaceSocialApp.makeRegistry(try testConfig(env))
        try await withFaceSocial(securityEnv(env), registry: manager) { app in try await body(app, manager) }
    }

    /// Loading, unloading and the memory profile are administration: they need an admin token.
    func admin(_ app: Application) async throws -> HTTPHeaders {
        let (access, _) = try await login(app, adminEmail, adminPassword)
        return bearer(access)
    }

    func image(_ name: String) throws -> Multipart {
        var form = Multipart()
        form.file("image", try testImage(name))
        return form
    }

    func pools(_ manager: ModelManager) async -> [String: PoolStatus] {
        var result: [String: PoolStatus] = [:]
        for device in await manager.devices() {
            for pool in device.pools { result["\(device.name):\(pool.name)"] = pool }
        }
        return result
    }

    @Test func everyServiceInTurnSucceedsWhileOnlySomeModelsFit() async throws {
        // Estimates (not RSS deltas, which other tests running in parallel disturb) make the
        // arithmetic exact: age and gender (52 MiB, needed together by attributes) fit the 60 MB flexible pool, but
        // age and retinaface (40 MiB each) never share it.
        let env = [
            "FACESOCIAL_FOOTPRINT": "estimate",
            "FACESOCIAL_DEVICE_BUDGETS": "CPU=315MB",
            "FACESOCIAL_POOLS": "CPU:critical=40MB,high=160MB,flexible=60MB",
            // The standard models share the flexible pool only; face-mesh (low) falls back to the
            // 55 MB default pool, where no standard model can crowd it out.
            "FACESOCIAL_MODEL_PLACEMENT": ["age", "gender", "minifas", "retinaface"].map { "\($0)=CPU:flexible" }
                .joined(separator: ";"),
        ]
        try await withManager(env) { app, manager in
            let routes = [
                "/v1/detect", "/v1/embed", "/v1/analyze?analyses=attributes", "/v1/liveness",
                "/v1/analyze?analyses=landmarks", "/v1/detect?detector=retinaface",
            ]
            for _ in 0..<2 {
                for route in routes {
                    let form = try image("obama.jpg")
                    let res = try await app.testing().sendRequest(
                        .POST, route, headers: form.headers, body: form.body())
                    #expect(res.status == .ok, "\(route): \(res.body.string.prefix(300))")
                }
            }
            // No pool ever holds more than its budget, and the small flexible pool had to evict.
            for (name, pool) in await pools(manager) {
                #expect(pool.usedBytes <= pool.budgetBytes, "\(name) over budget")
            }
            let statuses = await manager.statuses()
            #expect(statuses.reduce(0) { $0 + $1.evictions } > 0)
            #expect(statuses.filter { $0.state == .loaded }.count < statuses.count)
            try await app.testing().test(.GET, "/system/models") { res in
                #expect(res.status == .ok)
                expectConforms("GET", "/system/models", res)
            }
            try await app.testing().test(.GET, "/system/vram") { res in
                #expect(res.status == .ok)
                expectConforms("GET", "/system/vram", res)
                let devices = body(res)[path: "data.devices"] as? [[String: Any]] ?? []
                let cpu = try #require(devices.first { $0["name"] as? String == "CPU" })
                #expect(cpu["budget_bytes"] as? Int == 315_000_000)
                let names = (cpu["pools"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                #expect(names == ["critical", "high", "flexible", "default"])
            }
        }
    }

    @Test func evictionFollowsPriorityThenLeastRecentUseAndSparesCriticalModels() async throws {
        let shared = ["yunet", "gender", "minifas", "face-mesh", "age"].map { "\($0)=CPU:shared" }
        // Charged at the manifest estimates (MiB: yunet 24, gender 12, minifas 20, face-mesh 20,
        // age 40) so the arithmetic is exact: 76 of 90 used, age needs 40, so face-mesh (low) goes,
        // then one standard model: minifas, the least recently used.
        let env = [
            "FACESOCIAL_DEVICE_BUDGETS": "CPU=1GB",
            "FACESOCIAL_FOOTPRINT": "estimate",
            "FACESOCIAL_POOLS": "CPU:shared=90MiB",
            "FACESOCIAL_MODEL_PLACEMENT": shared.joined(separator: ";"),
        ]
        try await withManager(env) { _, manager in
            // yunet (critical) is loaded at start and never used again: the least recently used.
            try await manager.load("gender")
            try await manager.load("minifas")
            try await manager.load("face-mesh")
            // Touch gender so minifas is the least recently used standard model.
            _ = try await manager.infer("gender", ["images": Tensor(zeros: [1, 3, 32, 32])])
                .isEmpty
            try await manager.load("age")
            let state = Dictionary(uniqueKeysWithValues: await manager.statuses().map { ($0.id, $0) })
            #expect(state["yunet"]?.state == .loaded, "critical models are never evicted")
            #expect(state["age"]?.state == .loaded)
            #expect(state["face-mesh"]?.state == .unloaded, "the low-priority model goes first")
            #expect(state["face-mesh"]?.evictions == 1)
            #expect(state["minifas"]?.state == .unloaded, "the least recently used standard model goes next")
            #expect(state["gender"]?.state == .loaded, "and no more than needed")
            let pool = try #require(await pools(manager)["CPU:shared"])
            #expect(pool.usedBytes <= pool.budgetBytes)
        }
    }

    /// The critical detector (and any preloaded model) is pinned: an unload is refused and it stays
    /// loaded, so readiness never depends on an operator's mistake.
    @Test func pinnedModelsAreNotUnloaded() async throws {
        try await withManager([:]) { app, manager in
            #expect(await manager.status("yunet")?.state == .loaded)
            try await app.testing().test(.POST, "/system/models/yunet/unload", headers: try await admin(app)) { res in
                #expect(res.status == .conflict, "\(res.body.string)")
                expectConforms("POST", "/system/models/{id}/unload", res)
                #expect(body(res)[path: "error.code"] as? String == "CONFLICT")
                #expect(body(res)[path: "error.details.model"] as? String == "yunet")
            }
            #expect(await manager.status("yunet")?.state == .loaded)
            try await app.testing().test(.GET, "/health/ready") { res in #expect(res.status == .ok) }
        }
    }

    @Test func unloadingGivesTheMemoryBack() async throws {
        try await withManager([:]) { app, manager in
            try await app.testing().test(.POST, "/system/models/sface/load", headers: try await admin(app)) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                expectConforms("POST", "/system/models/{id}/load", res)
                #expect(body(res)[path: "data.state"] as? String == "loaded")
            }
            let loaded = try #require(await manager.status("sface"))
            let bytes = try #require(loaded.bytes)
            #expect(bytes > 10_000_000, "a 38 MB model measured at \(bytes) bytes")
            var profileBefore: [String: Any] = [:]
            try await app.testing().test(.GET, "/system/memory-profile", headers: try await admin(app)) { res in
                expectConforms("GET", "/system/memory-profile", res)
                profileBefore = body(res)
            }
            #expect(profileBefore[path: "data.models.sface"] as? Int == bytes)
            try await app.testing().test(.POST, "/system/models/sface/unload", headers: try await admin(app)) { res in
                #expect(res.status == .ok)
                expectConforms("POST", "/system/models/{id}/unload", res)
                #expect(body(res)[path: "data.state"] as? String == "unloaded")
                #expect(body(res)[path: "data.bytes"] is NSNull)
            }
            let unloaded = try #require(await manager.status("sface"))
            // The RSS drop measured around the release: most of the footprint comes back. RSS is the
            // whole process's, and the suites running beside this one allocate at the same time
            // (a fresh-clone run measured 29.9 of 94 MB once), so a short drop is measured again
            // with another load and unload, up to three cycles in all.
            var freed = try #require(unloaded.freedBytes)
            var cycles = 1
            while freed <= bytes / 3 && cycles < 3 {
                for action in ["load", "unload"] {
                    try await app.testing().test(
                        .POST, "/system/models/sface/\(action)", headers: try await admin(app)
                    ) { res in #expect(res.status == .ok, "\(action): \(res.body.string)") }
                }
                freed = try #require(await manager.status("sface")?.freedBytes)
                cycles += 1
            }
            #expect(freed > bytes / 3, "freed \(freed) of \(bytes) bytes after \(cycles) cycles")
            try await app.testing().test(.GET, "/system/memory-profile", headers: try await admin(app)) { res in
                let after = body(res)
                #expect(after[path: "data.models.sface"] == nil)
                let modelBytes = (after[path: "data.model_bytes"] as? Int) ?? .max
                #expect(modelBytes <= (profileBefore[path: "data.model_bytes"] as? Int ?? 0) - bytes)
            }
        }
    }

    @Test func aFullPoolSendsTheModelToItsFallback() async throws {
        let env = [
            "FACESOCIAL_DEVICE_BUDGETS": "CPU=1GB",
            "FACESOCIAL_POOLS": "CPU:critical=40MB,high=30MB,flexible=45MB",
        ]
        try await withManager(env) { app, manager in
            let form = try image("obama.jpg")
            try await app.testing().test(.POST, "/v1/embed", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .ok, "\(res.body.string.prefix(300))")
            }
            let status = try #require(await manager.status("sface"))
            #expect(status.placement == ["CPU:high", "CPU:flexible", "CPU"])
            #expect(status.pool == "default")
            #expect(status.fallbacks == 1)
            try await app.testing().test(.GET, "/system/models") { res in
                let models = body(res)[path: "data.models"] as? [[String: Any]] ?? []
                let sface = try #require(models.first { $0["id"] as? String == "sface" })
                #expect(sface["device"] as? String == "CPU")
                #expect(sface["pool"] as? String == "default")
                #expect(sface["fallbacks"] as? Int == 1)
            }
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#"model_fallback_total{model="sface",from="CPU:high",to="CPU"} 1"#))
                for name in [
                    "vram_allocated_bytes", "vram_available_bytes", "model_loaded", "model_load_duration_seconds",
                    "model_inference_duration_seconds", "model_queue_length",
                ] {
                    #expect(res.body.string.contains("\n\(name)"), "\(name) missing")
                }
            }
        }
    }

    @Test func aModelBiggerThanEveryBudgetGives503InsufficientMemory() async throws {
        try await withManager(["FACESOCIAL_DEVICE_BUDGETS": "CPU=60MB"]) { app, _ in
            let form = try image("obama.jpg")
            try await app.testing().test(.POST, "/v1/embed", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .serviceUnavailable)
                #expect(errorCode(res) == "INSUFFICIENT_MEMORY")
                expectConforms("POST", "/v1/embed", res)
            }
            try await app.testing().test(.POST, "/system/models/sface/load", headers: try await admin(app)) { res in
                #expect(res.status == .serviceUnavailable)
                #expect(errorCode(res) == "INSUFFICIENT_MEMORY")
            }
            // The detector still serves: the refusal is per model.
            try await app.testing().test(.POST, "/v1/detect", headers: form.headers, body: form.body()) { res in
                #expect(res.status == .ok)
            }
        }
    }

    @Test func fiftyConcurrentRequestsOnAColdModelCauseOneLoad() async throws {
        try await withManager(["FACESOCIAL_QUEUE_LIMIT": "100"]) { app, manager in
            #expect(await manager.status("retinaface")?.state == .unloaded)
            let bytes = try testImage("obama_small.jpg")
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        var form = Multipart()
                        form.file("image", bytes)
                        return try await app.testing().sendRequest(
                            .POST, "/v1/detect?detector=retinaface", headers: form.headers, body: form.body()
                        ).status
                    }
                }
                return try await group.reduce(into: [HTTPStatus]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses.filter { $0 != .ok })")
            let status = try #require(await manager.status("retinaface"))
            #expect(status.loads == 1)
            #expect(status.uses == 50)
        }
    }

    @Test func aFloodBeyondTheQueueGets503QueueFullWhileAdmittedRequestsSucceed() async throws {
        try await withManager(["FACESOCIAL_QUEUE_LIMIT": "1"]) { app, manager in
            try await manager.load("retinaface")
            let bytes = try testImage("obama_small.jpg")
            let responses = try await withThrowingTaskGroup(of: (HTTPStatus, String?, String?).self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        var form = Multipart()
                        form.file("image", bytes)
                        let res = try await app.testing().sendRequest(
                            .POST, "/v1/detect?detector=retinaface", headers: form.headers, body: form.body())
                        if res.status != .ok { expectConforms("POST", "/v1/detect", res) }
                        return (res.status, errorCode(res), res.headers.first(name: "Retry-After"))
                    }
                }
                return try await group.reduce(into: [(HTTPStatus, String?, String?)]()) { $0.append($1) }
            }
            let ok = responses.filter { $0.0 == .ok }
            let refused = responses.filter { $0.0 != .ok }
            #expect(!ok.isEmpty)
            #expect(!refused.isEmpty, "40 concurrent requests fit a queue of 1")
            for (status, code, retryAfter) in refused {
                #expect(status == .serviceUnavailable)
                #expect(code == "QUEUE_FULL")
                #expect((Int(retryAfter ?? "") ?? 0) >= 1)
            }
        }
    }

    @Test func badTargetsAndModelsGiveClearErrors() async throws {
        try await withManager([:]) { app, _ in
            // Anonymous callers cannot change what is loaded, even in development.
            try await app.testing().test(.POST, "/system/models/gender/load") { res in
                #expect(res.status == .unauthorized)
                #expect(errorCode(res) == "UNAUTHORIZED")
            }
            try await app.testing().test(.POST, "/system/models/nope/load", headers: try await admin(app)) { res in
                #expect(res.status == .notFound)
                #expect(errorCode(res) == "NOT_FOUND")
            }
            try await app.testing().test(
                .POST, "/system/models/gender/load?device=TPU:zone", headers: try await admin(app)
            ) { res in
                #expect(res.status == .badRequest)
                #expect(errorCode(res) == "VALIDATION_FAILED")
            }
        }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_POOLS": "CPU:high"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_DEVICE_BUDGETS": "CPU=lots"]) }
        #expect(throws: ConfigError.self) { try testConfig(["FACESOCIAL_IDLE_TTL": "critical=5m"]) }
        #expect(throws: ConfigError.self) {
            try FaceSocialApp.makeRegistry(
                try testConfig(["FACESOCIAL_DEVICE_BUDGETS": "CPU=10MB", "FACESOCIAL_POOLS": "CPU:high=20MB"]))
        }
    }

    @Test func idleModelsUnloadAfterTheirClassTTL() async throws {
        try await withManager(["FACESOCIAL_IDLE_TTL": "standard=1m"]) { _, manager in
            try await manager.load("gender")
            try await manager.load("sface")
            #expect(await manager.sweepIdle().isEmpty, "nothing is idle for a minute yet")
            let later = ContinuousClock.now + .seconds(61)
            #expect(await manager.sweepIdle(now: later) == ["gender"])
            #expect(await manager.status("gender")?.state == .unloaded)
            #expect(await manager.status("sface")?.state == .loaded, "high has no TTL here")
            #expect(await manager.status("yunet")?.state == .loaded)
        }
    }

    @Test func batchedInferencesMatchSingleOnes() async throws {
        let single = try FaceSocialApp.makeRegistry(try testConfig())
        let batched = try FaceSocialApp.makeRegistry(try testConfig(["FACESOCIAL_BATCH_MAX": "4"]))
        let inputs = (0..<8).map { i in
            ["images": Tensor(shape: [1, 3, 32, 32], data: (0..<3072).map { Float(($0 * (i + 3)) % 255) })]
        }
        var expected: [[Float]] = []
        for input in inputs { expected.append(try await single.infer("gender", input).values.first!.data) }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (index, input) in inputs.enumerated() {
                group.addTask { (index, try await batched.infer("gender", input).values.first!.data) }
            }
            return try await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
        }
        #expect(await batched.status("gender")?.maxBatch == 4)
        for index in inputs.indices {
            let got = try #require(results[index])
            #expect(zip(got, expected[index]).allSatisfy { abs($0 - $1) < 1e-3 }, "item \(index)")
        }
    }
}
