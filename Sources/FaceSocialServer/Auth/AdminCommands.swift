import Fluent
import Foundation
import Vapor

/// What `facesocial users create` and `facesocial keys rotate` do, without loading any model.
public enum SecurityAdmin {
    /// Creates a user in the configured database (migrating it first). Returns the user id.
    public static func createUser(
        config: AppConfig, email: String, password: String, role: String, collections: [String]
    ) async throws -> String {
        let app = try await Application.make(.init(name: "cli", arguments: ["facesocial"]))
        do {
            try DatabaseSetup.configure(app, config: config)
            try await app.autoMigrate()
            let user = try await Users.create(
                email: email, password: password, role: role, collections: collections,
                cost: config.security.bcryptCost, on: app.db, threadPool: app.threadPool)
            let id = try user.requireID().uuidString.lowercased()
            await AuditLog.record(
                on: app.db, by: .system("cli", logger: app.logger), action: "user.create", resourceType: "user",
                resourceID: id, details: ["role": role])
            try await app.asyncShutdown()
            return id
        } catch {
            try? await app.asyncShutdown()
            if let apiError = error as? APIError {
                throw ConfigError.invalid(variable: "user", reason: apiError.message)
            }
            throw error
        }
    }
}
