import ArgumentParser
import FaceSocialServer
import Foundation
import ModelRuntime

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Install and check model files against the manifest.",
        subcommands: [Pull.self, Verify.self, List.self]
    )

    struct Location: ParsableArguments {
        @Option(help: "Manifest file (default: FACESOCIAL_MODEL_MANIFEST or models/manifest.json).")
        var manifest: String?
        @Option(help: "Model directory (default: FACESOCIAL_MODEL_DIR or var/models).")
        var modelDir: String?

        func store() throws -> ModelStore {
            let env = ProcessInfo.processInfo.environment
            let manifestPath = manifest ?? env["FACESOCIAL_MODEL_MANIFEST"] ?? "models/manifest.json"
            let directory = modelDir ?? env["FACESOCIAL_MODEL_DIR"] ?? "var/models"
            let manifestURL = URL(fileURLWithPath: manifestPath).standardizedFileURL
            // The upstream fetcher is an install-time Python script kept beside the manifest's repo.
            let fetcher =
                env["FACESOCIAL_MODEL_FETCHER"].map { URL(fileURLWithPath: $0) }
                ?? manifestURL.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("scripts/models/fetch_upstream.py")
            return try ModelStore(
                manifestURL: manifestURL, directory: URL(fileURLWithPath: directory),
                upstreamFetcher: FileManager.default.fileExists(atPath: fetcher.path) ? fetcher : nil,
                acceptedLicences: ModelStore.acceptedLicences(env["FACESOCIAL_ACCEPT_MODEL_LICENCES"]))
        }

        func selected(_ store: ModelStore, _ ids: [String]) throws -> [ModelManifest.Entry] {
            if ids.isEmpty { return store.manifest.models }
            return try ids.map { id in
                guard let entry = store.manifest.entry(id) else {
                    throw ValidationError("no model \"\(id)\" in the manifest")
                }
                return entry
            }
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install models from a mirror folder or upstream, checking SHA-256.")
        @OptionGroup var location: Location
        @Option(name: .customLong("from"), help: "Mirror folder to install from (default: FACESOCIAL_MODEL_MIRROR).")
        var mirror: String?
        @Argument(help: "Model ids (default: all).") var ids: [String] = []

        func run() throws {
            let store = try location.store()
            let mirrorPath = mirror ?? ProcessInfo.processInfo.environment["FACESOCIAL_MODEL_MIRROR"]
            let mirrorURL = mirrorPath.map { URL(fileURLWithPath: $0) }
            var failures: [String] = []
            for entry in try location.selected(store, ids) {
                // All models: a restricted licence nobody accepted is skipped, not a failure; named
                // on the command line without the opt-in it fails with the reason.
                if ids.isEmpty, !store.isEnabled(entry) {
                    print(
                        "\(entry.id): skipped (\(entry.licence); opt in with \(ModelStore.acceptLicencesVariable)=\(entry.licenceOptIn ?? ""))"
                    )
                    continue
                }
                do {
                    let how = try store.pull(entry, mirror: mirrorURL) { print("  \(entry.id): \($0)") }
                    print("\(entry.id): ok (\(how))")
                } catch {
                    print("\(entry.id): FAILED: \(error)")
                    failures.append(entry.id)
                }
            }
            if !failures.isEmpty { throw ExitCode(1) }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check installed model files against the manifest.")
        @OptionGroup var location: Location
        @Argument(help: "Model ids (default: all).") var ids: [String] = []

        func run() throws {
            let store = try location.store()
            var bad = 0
            for entry in try location.selected(store, ids) {
                let status = store.status(of: entry)
                if status == .missing, !store.isEnabled(entry) {
                    print("\(entry.id): not installed (restricted licence, not accepted)")
                    continue
                }
                print("\(entry.id): \(status.summary)")
                if !status.isOK { bad += 1 }
            }
            if bad > 0 {
                print("\(bad) model file(s) failed verification")
                throw ExitCode(1)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the models of the manifest.")
        @OptionGroup var location: Location

        func run() throws {
            let store = try location.store()
            let rows = store.manifest.models.map { entry in
                [
                    entry.id, entry.service.rawValue, entry.version, entry.priority.rawValue, String(entry.size),
                    "\(entry.estimatedMemoryMB) MB",
                    entry.licence
                        + (entry.licenceOptIn.map { " (opt-in: \($0)\(store.isEnabled(entry) ? ", accepted" : ""))" }
                            ?? ""),
                    store.status(of: entry).summary,
                ]
            }
            printTable(
                header: ["id", "service", "version", "priority", "bytes", "est. memory", "licence", "file"], rows: rows)
        }
    }
}

func printTable(header: [String], rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    rows.forEach { print(line($0)) }
}
