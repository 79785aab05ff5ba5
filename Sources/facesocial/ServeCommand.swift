import ArgumentParser
import FaceSocialServer
import Foundation
import ModelRuntime
import Vapor

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP API server.",
        discussion: "Configuration comes from environment variables:\n\n"
            + ConfigVariable.all.map { variable in
                "  \(variable.name)\n      \(variable.summary) (default: \(variable.defaultValue))"
            }.joined(separator: "\n")
    )

    @ArgumentParser.Option(help: "Override FACESOCIAL_PORT.") var port: Int?
    @ArgumentParser.Option(help: "Override FACESOCIAL_HOST.") var host: String?

    func run() async throws {
        // Before the server starts its threads: see ProcessMemory.limitArenas.
        ProcessMemory.limitArenas(2)
        var config: AppConfig
        do {
            config = try AppConfig.fromEnvironment()
        } catch {
            throw ValidationError("configuration refused: \(error)")
        }
        if let port { config.port = port }
        if let host { config.host = host }
        FaceSocialApp.bootstrapLogging(config)
        // Vapor's own command line is not used: its `serve` runs with the configuration above.
        let environment = Environment(
            name: config.profile == .production ? "production" : "development", arguments: ["facesocial"])
        let app = try await Application.make(environment)
        do {
            try await FaceSocialApp.configure(app, config: config)
            try await app.execute()
        } catch {
            app.logger.critical("server stopped: \(error)")
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }
}
