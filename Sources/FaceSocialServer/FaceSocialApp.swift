import FaceKit
import FaceSearch
import Fluent
import FluentSQLiteDriver
import Foundation
import ModelRuntime
import Vapor

/// Builds the Vapor application from a configuration: middleware, database, models and routes.
public enum FaceSocialApp {
    /// Sets up logging for the process once: JSON lines in production, readable text otherwise.
    public static func bootstrapLogging(_ config: AppConfig) {
        let (level, format) = (config.logLevel, config.jsonLogs ? LineLogHandler.Format.json : .text)
        LoggingSystem.bootstrap { LineLogHandler(label: $0, level: level, format: format) }
    }

    /// The model registry for a configuration. CPU models run on the configured CPU engine
    /// (OpenVINO by default); with CUDA devices configured, NVIDIA GPUs that NVML reports become
    /// memory-manager devices served by ONNX Runtime, placed first, and a model that does not fit
    /// or whose provider cannot attach falls back to a CPU pool.
    public static func makeRegistry(_ config: AppConfig) throws -> ModelRegistry {
        let store = try ModelStore(
            manifestURL: config.manifestURL, directory: config.modelDirectory,
            acceptedLicences: config.acceptedModelLicences)
        // Every pipeline's model as the manifest declares it, before anything loads.
        let problems = FaceModel.mismatches(in: store.manifest)
        guard problems.isEmpty else {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_MODEL_MANIFEST", reason: problems.joined(separator: "; "))
        }
        let engine = try makeEngine(config.engines)
        let device = config.engines.placementDevice
        engine.probe([device])
        let tuning = config.tuning
        do {
            // The memory manager decides the device of every load (it overrides `device`); the
            // CUDA device is probed above so an unavailable GPU is reported with its reason. On
            // the CPU the tuner replaces precision and hint with what it measured.
            return try ModelRegistry(
                store: store, engine: engine, policy: config.memory, tuner: SessionTuner(settings: tuning)
            ) { entry in
                let choice = tuning.untuned(entry)
                return SessionOptions(
                    device: "CPU", precision: choice.precision, performanceHint: choice.hint,
                    inputShapes: [entry.input.name: entry.input.shape])
            }
        } catch {
            throw ConfigError.invalid(variable: error.variable, reason: error.reason)
        }
    }

    /// The engines for each device kind, behind a router that falls back to CPU.
    public static func makeEngine(_ config: EngineConfig) throws -> EngineRouter {
        var onnxRuntime: ONNXRuntimeEngine?
        func ort() throws -> ONNXRuntimeEngine {
            if let onnxRuntime { return onnxRuntime }
            let engine = try ONNXRuntimeEngine(configuration: config.onnxRuntime)
            onnxRuntime = engine
            return engine
        }
        var engines: [String: any InferenceEngine] = [:]
        switch config.cpuEngine {
        case .openvino: engines["CPU"] = try OpenVINOEngine()
        case .onnxruntime: engines["CPU"] = try ort()
        }
        if !config.cudaDevices.isEmpty {
            engines["CUDA"] = try ort()
            engines["TENSORRT"] = try ort()
        }
        return EngineRouter(engines: engines)
    }

    public static func configure(_ app: Application, config: AppConfig, registry: ModelRegistry? = nil) async throws {
        let config = try config.withInstallationSecrets()
        APIJSON.install()
        app.http.server.configuration.hostname = config.host
        app.http.server.configuration.port = config.port
        // Every route's body limit unless it declares its own (`Route.allowingBody(upTo:)`): the
        // server refuses a longer body with 413 before the route runs.
        app.routes.defaultMaxBodySize = ByteCount(integerLiteral: config.imageLimits.maxBytes)
        let limits = TransportLimits(
            idleTimeout: .seconds(Int64(config.security.idleTimeoutSeconds)),
            headTimeout: .seconds(Int64(config.security.headTimeoutSeconds)),
            bodyTimeout: .seconds(Int64(config.security.bodyTimeoutSeconds)),
            maxConnections: config.security.maxConnections)

        let metrics = ModelMetrics()
        // Vapor asks the provider for `app.server` each time: one instance, held by the provider.
        let server = FaceSocialHTTPServer(
            application: app, limits: limits, metrics: TransportMetrics(registry: metrics.registry))
        app.servers.use { _ in server }
        app.middleware = Middlewares()
        app.middleware.use(RequestContextMiddleware())
        // Outside the error middleware, so refused requests are counted with their final status.
        app.middleware.use(HTTPMetricsMiddleware(registry: metrics.registry))
        app.middleware.use(APIErrorMiddleware())
        app.middleware.use(TransportRefusalMiddleware())

        try DatabaseSetup.configure(app, config: config)
        if config.autoMigrate { try await app.autoMigrate() }
        let security = try await SecurityServices.configure(app, config: config)
        security.cache.statistics.export(to: metrics.registry, routes: ["detect", "analyze"])
        security.redis?.metrics?.export(to: metrics.registry)
        let gallery = GalleryService(
            router: app.databaseRouter, cipher: try DataCipher(config: config), logger: app.logger,
            pollMs: config.galleryPollMs,
            searchPolicy: FaceIndex.Policy(
                approximateFrom: config.galleryApproximateFrom, refinementBits: config.galleryRefinementBits))
        app.storage[GalleryServiceKey.self] = gallery
        app.lifecycle.use(GalleryLifecycle(gallery: gallery))
        app.lifecycle.use(HeapTrimmer.start())
        gallery.start()

        let registry = try registry ?? makeRegistry(config)
        let pinned = pinnedModels(config, registry: registry)
        await registry.setObserver(metrics.observe)
        await metrics.prepare(registry)
        await registry.pin(pinned)
        await registry.startMaintenance()
        for id in pinned {
            do {
                try await registry.load(id)
            } catch {
                app.logger.error(
                    "could not load pinned model", metadata: ["model": .string(id), "error": .string("\(error)")])
            }
        }

        let faces = FaceService(registry: registry, limits: config.imageLimits, threadPool: app.threadPool)
        try app.register(collection: HealthRoutes(registry: registry, pinnedModels: pinned, security: security))
        // The stateless analysis routes need `face:analyze`, or nothing in development (a setting
        // production refuses).
        let analysis = app.grouped(
            RequirePermission(permission: .faceAnalyze, allowAnonymous: config.security.allowAnonymousAnalysis))
        try analysis.register(collection: DetectRoutes(faces: faces, config: config, cache: security.cache))
        try analysis.register(collection: AnalysisRoutes(faces: faces, config: config, cache: security.cache))
        try analysis.register(collection: DeepfakeRoutes(faces: faces, config: config))
        try app.register(collection: AuthRoutes())
        try app.register(collection: AdminRoutes())
        try app.register(collection: AuditRoutes())
        // Galleries store and read biometric data: never anonymous; each route checks the
        // principal's permission and collection (GalleryRoutes).
        let galleryRoutes = GalleryRoutes(faces: faces, config: config, gallery: gallery)
        try app.register(collection: galleryRoutes)
        try app.register(collection: ClusterRoutes(gallery: galleryRoutes))
        if config.security.openAPIEnabled { try app.register(collection: OpenAPIRoutes()) }
        try Console.install(on: app)
        try app.register(
            collection: SystemRoutes(
                manager: registry, metrics: metrics, allowAnonymousStatus: config.security.allowAnonymousAnalysis))
    }

    /// Critical models plus the configured preload list, in manifest order.
    static func pinnedModels(_ config: AppConfig, registry: ModelRegistry) -> [String] {
        registry.store.manifest.models.filter { $0.priority == .critical || config.preloadModels.contains($0.id) }.map(
            \.id)
    }
}

/// Stops the gallery's background work (version polling, LISTEN, replica checks) at shutdown.
struct GalleryLifecycle: LifecycleHandler {
    let gallery: GalleryService
    func shutdownAsync(_ application: Application) async { await gallery.stop() }
}
