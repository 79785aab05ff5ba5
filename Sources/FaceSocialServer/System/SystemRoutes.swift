import FaceKit
import Foundation
import ModelRuntime
import Vapor

/// `/system/*`: what the memory manager holds and where, model load/unload, the process's memory,
/// and `/metrics`.
struct SystemRoutes: RouteCollection {
    let manager: ModelManager
    let metrics: ModelMetrics
    /// Development only: status routes open to anonymous callers (production refuses the setting).
    var allowAnonymousStatus = false

    func boot(routes: any RoutesBuilder) throws {
        // Reading device and model status is monitoring (open to anonymous callers in development
        // when analysis is); changing what is loaded, and the memory profile, are administration.
        let monitor = routes.grouped(
            RequirePermission(permission: .systemMonitor, allowAnonymous: allowAnonymousStatus)
        )
        .grouped("system")
        monitor.get("vram", use: vram)
        monitor.get("models", use: models)
        let admin = routes.grouped(RequirePermission(permission: .adminSystem)).grouped("system")
        admin.post("models", ":id", "load", use: load)
        admin.post("models", ":id", "unload", use: unload)
        admin.get("memory-profile", use: memoryProfile)
        // Scraped by Prometheus (FACESOCIAL_METRICS_TOKEN) or read by an operator: monitoring, like
        // the status routes. The nginx edge does not expose it either (deploy/nginx).
        routes.grouped(RequirePermission(permission: .systemMonitor, allowAnonymous: allowAnonymousStatus)).get(
            "metrics"
        ) { req async -> Response in
            await req.application.databaseRouter.exportPoolMetrics(to: metrics.registry)
            await req.application.security?.redis?.exportServerMetrics(to: metrics.registry)
            let text = await metrics.scrape(manager)
            return Response(
                status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(string: text))
        }
    }

    // MARK: - DTOs

    struct PoolDTO: Content {
        let name: String
        let budgetBytes: Int
        let usedBytes: Int
        let freeBytes: Int
        let reservedBytes: Int
        let models: [ResidentDTO]
    }

    struct ResidentDTO: Content {
        let id: String
        let bytes: Int
    }

    struct DeviceDTO: Content {
        let name: String
        let kind: String
        let placeable: Bool
        let totalBytes: Int
        let budgetBytes: Int
        let usedBytes: Int
        let freeBytes: Int
        let pools: [PoolDTO]
        let reading: DeviceReading
        let unavailableReason: String?
    }

    struct NVMLDTO: Content {
        let available: Bool
        let reason: String?
    }

    struct VramDTO: Content {
        let devices: [DeviceDTO]
        let nvml: NVMLDTO
        /// Devices an engine was asked to use and whether it could attach to them (a CUDA device
        /// without a driver or libraries is listed here with the reason).
        let engineDevices: [DeviceAvailability]
    }

    struct ModelDTO: Content {
        let id: String
        let service: ModelManifest.ModelRole
        let version: String
        let state: String
        let device: String?
        let pool: String?
        let bytes: Int?
        let bytesSource: String?
        let estimatedBytes: Int
        let freedBytes: Int?
        let priority: String
        let placement: [String]
        let lastUsed: Date?
        let uses: Int
        let loads: Int
        let fallbacks: Int
        let evictions: Int
        let loadMs: Double?
        let p50Ms: Double?
        let p95Ms: Double?
        let concurrency: Int?
        let maxBatch: Int?
        let running: Int
        let queued: Int
        let failure: String?
        let tuning: TuningDTO?
        let licence: String
        let licenceOptIn: String?
        let enabled: Bool

        enum CodingKeys: String, CodingKey {
            case licence, licenceOptIn, enabled
            case id, service, version, state, device, pool, bytes, priority, placement, uses, loads, fallbacks
            case evictions, concurrency, running, queued, failure, tuning
            case bytesSource, estimatedBytes, freedBytes, lastUsed, loadMs, p50Ms, p95Ms, maxBatch
        }

        init(_ s: ModelStatus) {
            id = s.id
            service = s.service
            version = s.version
            state = s.state.rawValue
            device = s.device
            pool = s.pool
            bytes = s.bytes
            bytesSource = s.bytesSource
            estimatedBytes = s.estimatedBytes
            freedBytes = s.freedBytes
            priority = s.priority.rawValue
            placement = s.placement
            lastUsed = s.lastUsed
            uses = s.uses
            loads = s.loads
            fallbacks = s.fallbacks
            evictions = s.evictions
            loadMs = s.loadMilliseconds.map { ($0 * 10).rounded() / 10 }
            p50Ms = s.p50Milliseconds.map { ($0 * 100).rounded() / 100 }
            p95Ms = s.p95Milliseconds.map { ($0 * 100).rounded() / 100 }
            concurrency = s.concurrency
            maxBatch = s.maxBatch
            running = s.running
            queued = s.queued
            failure = s.failure
            tuning = s.tuning.map(TuningDTO.init)
            licence = s.licence
            licenceOptIn = s.licenceOptIn
            enabled = s.enabled
        }

        // Optional fields are written as null so clients see every field on every model.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(service, forKey: .service)
            try c.encode(version, forKey: .version)
            try c.encode(state, forKey: .state)
            try c.encode(device, forKey: .device)
            try c.encode(pool, forKey: .pool)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(bytesSource, forKey: .bytesSource)
            try c.encode(estimatedBytes, forKey: .estimatedBytes)
            try c.encode(freedBytes, forKey: .freedBytes)
            try c.encode(priority, forKey: .priority)
            try c.encode(placement, forKey: .placement)
            try c.encode(lastUsed.map { ISO8601DateFormatter().string(from: $0) }, forKey: .lastUsed)
            try c.encode(uses, forKey: .uses)
            try c.encode(loads, forKey: .loads)
            try c.encode(fallbacks, forKey: .fallbacks)
            try c.encode(evictions, forKey: .evictions)
            try c.encode(loadMs, forKey: .loadMs)
            try c.encode(p50Ms, forKey: .p50Ms)
            try c.encode(p95Ms, forKey: .p95Ms)
            try c.encode(concurrency, forKey: .concurrency)
            try c.encode(maxBatch, forKey: .maxBatch)
            try c.encode(running, forKey: .running)
            try c.encode(queued, forKey: .queued)
            try c.encode(failure, forKey: .failure)
            try c.encode(tuning, forKey: .tuning)
            try c.encode(licence, forKey: .licence)
            try c.encode(licenceOptIn, forKey: .licenceOptIn)
            try c.encode(enabled, forKey: .enabled)
        }
    }

    /// How a model's CPU precision and hint were chosen, with every candidate's numbers.
    struct TuningDTO: Content {
        struct Candidate: Content {
            let precision: String
            let hint: String
            let latencyMs: Double
            let throughputPerS: Double
            let requests: Int
        }
        let precision: String
        let hint: String
        let source: String
        let cpu: String
        let callers: Int
        let measuredAt: String?
        let candidates: [Candidate]
        enum CodingKeys: String, CodingKey {
            case precision, hint, source, cpu, callers, candidates, measuredAt
        }

        init(_ record: TuningRecord) {
            precision = record.chosen.precision.rawValue
            hint = record.chosen.hint.rawValue
            source = record.source.rawValue
            cpu = record.cpu
            callers = record.callers
            measuredAt = record.measuredAt.map { ISO8601DateFormatter().string(from: $0) }
            candidates = record.measurements.map {
                Candidate(
                    precision: $0.choice.precision.rawValue, hint: $0.choice.hint.rawValue,
                    latencyMs: ($0.latencyMilliseconds * 1000).rounded() / 1000,
                    throughputPerS: ($0.throughputPerSecond * 10).rounded() / 10, requests: $0.requests)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(precision, forKey: .precision)
            try c.encode(hint, forKey: .hint)
            try c.encode(source, forKey: .source)
            try c.encode(cpu, forKey: .cpu)
            try c.encode(callers, forKey: .callers)
            try c.encode(measuredAt, forKey: .measuredAt)
            try c.encode(candidates, forKey: .candidates)
        }
    }

    struct ModelsDTO: Content {
        let models: [ModelDTO]
    }

    struct MemoryProfileDTO: Content {
        let rssBytes: Int
        let peakRssBytes: Int
        let modelBytes: Int
        let models: [String: Int]
        let caches: [String: Int]
        let allocator: ProcessMemory.AllocatorStatistics?
        /// How long the last periodic malloc_trim took (`HeapTrimmer`); absent before the first.
        let lastTrimMs: Double?
    }

    // MARK: - Handlers

    @Sendable
    func vram(_ req: Request) async throws -> Envelope<VramDTO> {
        let devices = await manager.devices().map { device in
            let used = device.pools.reduce(0) { $0 + $1.usedBytes }
            return DeviceDTO(
                name: device.name, kind: device.kind.rawValue, placeable: device.placeable,
                totalBytes: device.totalBytes, budgetBytes: device.budgetBytes, usedBytes: used,
                freeBytes: device.budgetBytes - used,
                pools: device.pools.map { pool in
                    PoolDTO(
                        name: pool.name, budgetBytes: pool.budgetBytes, usedBytes: pool.usedBytes,
                        freeBytes: pool.budgetBytes - pool.usedBytes, reservedBytes: pool.reservedBytes,
                        models: pool.models.sorted { $0.key < $1.key }.map { ResidentDTO(id: $0.key, bytes: $0.value) })
                }, reading: device.reading, unavailableReason: device.unavailableReason)
        }
        let reason = manager.inventory.nvmlUnavailable
        let engineDevices = (manager.engine as? EngineRouter)?.deviceAvailability() ?? []
        return req.envelope(
            VramDTO(
                devices: devices, nvml: NVMLDTO(available: reason == nil, reason: reason),
                engineDevices: engineDevices))
    }

    @Sendable
    func models(_ req: Request) async throws -> Envelope<ModelsDTO> {
        req.envelope(ModelsDTO(models: await manager.statuses().map(ModelDTO.init)))
    }

    struct LoadBody: Content {
        let device: String?
    }

    @Sendable
    func load(_ req: Request) async throws -> Envelope<ModelDTO> {
        let id = try modelID(req)
        var device = try? req.query.get(String.self, at: "device")
        if device == nil, req.body.data != nil, req.headers.contentType == .json {
            device = try req.content.decode(LoadBody.self).device
        }
        var target: PlacementTarget?
        if let device, !device.isEmpty {
            guard let parsed = PlacementTarget(device) else {
                throw APIError.validation("device must be DEVICE or DEVICE:pool, e.g. CPU:high", field: "device")
            }
            target = parsed
        }
        try await manager.load(id, on: target)
        req.context.used(id)
        return req.envelope(ModelDTO(try await status(id)))
    }

    @Sendable
    func unload(_ req: Request) async throws -> Envelope<ModelDTO> {
        let id = try modelID(req)
        try await manager.unload(id)
        return req.envelope(ModelDTO(try await status(id)))
    }

    @Sendable
    func memoryProfile(_ req: Request) async throws -> Envelope<MemoryProfileDTO> {
        var models: [String: Int] = [:]
        for status in await manager.statuses() {
            if let bytes = status.bytes, status.state == .loaded { models[status.id] = bytes }
        }
        return req.envelope(
            MemoryProfileDTO(
                rssBytes: ProcessMemory.residentBytes(), peakRssBytes: ProcessMemory.peakResidentBytes(),
                modelBytes: models.values.reduce(0, +), models: models, caches: MemoryCaches.shared.sizes(),
                allocator: ProcessMemory.allocatorStatistics(),
                lastTrimMs: HeapTrimmer.lastTrim.withLock { $0 }?.milliseconds))
    }

    private func modelID(_ req: Request) throws -> String {
        guard let id = req.parameters.get("id"), manager.store.manifest.entry(id) != nil else {
            throw APIError.notFound("no model \"\((req.parameters.get("id") ?? "").prefix(60))\" in the manifest")
        }
        return id
    }

    private func status(_ id: String) async throws -> ModelStatus {
        guard let status = await manager.status(id) else { throw APIError.notFound("no model \(id)") }
        return status
    }
}
