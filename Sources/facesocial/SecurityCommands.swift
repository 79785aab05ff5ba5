import ArgumentParser
import FaceSocialServer
import Foundation

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Manage user accounts.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create a user. The password is read from standard input (one line) unless --password-env names a variable."
        )

        @Option(help: "The user's email (sign-in name).") var email: String
        @Option(help: "admin, operator, developer or user.") var role: String = "user"
        @Option(help: "Comma-separated collection ids the user may reach.") var collections: String = ""
        @Option(help: "Environment variable that holds the password.") var passwordEnv: String?

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let password: String
            if let name = passwordEnv {
                guard let value = ProcessInfo.processInfo.environment[name] else {
                    throw ValidationError("\(name) is not set")
                }
                password = value
            } else {
                password = readLine(strippingNewline: true) ?? ""
            }
            let ids = collections.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            let id = try await SecurityAdmin.createUser(
                config: config, email: email, password: password, role: role, collections: ids)
            print("created user \(id) (\(email), \(role))")
        }
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Rotate JWT signing keys and the data encryption key.",
        subcommands: [Rotate.self, RotateData.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a new ES256 key into FACESOCIAL_JWT_KEY_DIR and make it the signing key; older keys keep verifying until pruned. Restart (or roll) the servers to load it."
        )

        @Option(help: "Key directory (default: FACESOCIAL_JWT_KEY_DIR).") var dir: String?
        @Option(help: "Rotated keys to keep, the new one included.") var keep: Int = 3

        func run() async throws {
            guard let path = dir ?? ProcessInfo.processInfo.environment["FACESOCIAL_JWT_KEY_DIR"] else {
                throw ValidationError("set FACESOCIAL_JWT_KEY_DIR or pass --dir")
            }
            guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
            let (kid, removed) = try KeyRing.rotate(directory: URL(fileURLWithPath: path), keep: keep)
            print("signing key is now \(kid)")
            if !removed.isEmpty { print("removed: \(removed.joined(separator: ", "))") }
        }
    }
}
