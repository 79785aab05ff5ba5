import FaceKit
import Fluent
import FluentSQLiteDriver
import Foundation
import ModelRuntime
import Vapor

/// Builds the Vapor application from a configuration: middleware, database, models and routes.
public enum FaceSocialApp {
    /// Sets up logging for the process once: JSON lines in production, readable text otherwise.
    public static func bootstrapLogging(_ config: AppConfig) {
        let level = config.logLevel
        if config.jsonLogs {
            LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardOutput(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }

    /// The model registry for a configuration, on the OpenVINO engine.
    public static func makeRegistry(_ config: AppConfig) throws -> ModelRegistry {
        let store = try ModelStore(manifestURL: config.manifestURL, directory: config.modelDirectory)
        let engine = try OpenVINOEngine()
        let hint = config.performanceHint
        return ModelRegistry(store: store, engine: engine) { entry in
            SessionOptions(
                device: "CPU", precision: entry.precision, performanceHint: hint,
                inputShapes: [entry.input.name: entry.input.shape])
        }
    }

    public static func configure(_ app: Application, config: AppConfig, registry: ModelRegistry? = nil) async throws {
        app.http.server.configuration.hostname = config.host
        app.http.server.configuration.port = config.port
        // The whole body limit is enforced per route while streaming; this only bounds routes
        // that let Vapor collect the body.
        app.routes.defaultMaxBodySize = ByteCount(integerLiteral: config.imageLimits.maxBytes)

        app.middleware = Middlewares()
        app.middleware.use(RequestContextMiddleware())
        app.middleware.use(APIErrorMiddleware())

        try DatabaseSetup.configure(app, config: config)
        if config.autoMigrate { try await app.autoMigrate() }
        let gallery = GalleryService(
            router: app.databaseRouter, cipher: try DataCipher(config: config), logger: app.logger,
            pollMs: config.galleryPollMs)
        app.storage[GalleryServiceKey.self] = gallery
        app.lifecycle.use(GalleryLifecycle(gallery: gallery))
        gallery.start()

        let registry = try registry ?? makeRegistry(config)
        let pinned = pinnedModels(config, registry: registry)
        for id in pinned {
            do {
                try await registry.load(id)
            } catch {
                app.logger.error(
                    "could not load pinned model", metadata: ["model": .string(id), "error": .string("\(error)")])
            }
        }

        let faces = FaceService(registry: registry, limits: config.imageLimits, threadPool: app.threadPool)
        try app.register(collection: HealthRoutes(registry: registry, pinnedModels: pinned))
        try app.register(collection: DetectRoutes(faces: faces, config: config))
        try app.register(collection: AnalysisRoutes(faces: faces, config: config))
        try app.register(collection: DeepfakeRoutes(faces: faces, config: config))
        try app.register(collection: GalleryRoutes(faces: faces, config: config, gallery: gallery))
        try app.register(collection: OpenAPIRoutes())
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
