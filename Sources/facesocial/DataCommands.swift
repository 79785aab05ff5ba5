import ArgumentParser
import FaceSocialServer
import Foundation

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending database migrations (DATABASE_URL, or the SQLite file in FACESOCIAL_DATA_DIR).")

    func run() async throws {
        let config = try AppConfig.fromEnvironment()
        let applied = try await DataMaintenance.migrate(config)
        print(applied.isEmpty ? "database is up to date" : "applied: \(applied.joined(separator: ", "))")
    }
}

// `facesocial keys rotate-data`, beside `keys rotate` (JWT signing keys, SecurityCommands.swift).
extension KeysCommand {
    struct RotateData: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-data",
            abstract: "Re-encrypt every stored embedding under the current FACESOCIAL_DATA_KEY.",
            discussion: """
                Set FACESOCIAL_DATA_KEY (and FACESOCIAL_DATA_KEY_ID) to the new key and list the old one in \
                FACESOCIAL_DATA_KEYS_OLD=oldid:base64 so that old rows can be opened; run this; then remove the \
                old key. Servers may keep running throughout: they read rows under either key.
                """)
        @Option(help: "Rows re-encrypted per transaction.") var batchSize = 500

        func run() async throws {
            let config = try AppConfig.fromEnvironment()
            let report = try await DataMaintenance.rotateDataKeys(config, batchSize: batchSize)
            print(
                "re-encrypted \(report.resealed) embeddings under key \(report.keyID); "
                    + "\(report.alreadyCurrent) were already under it")
        }
    }
}
