import ArgumentParser
import FaceSocialServer
import Foundation
import ModelRuntime

/// Measures every model's CPU candidates (precision × OpenVINO hint) on this machine now and
/// writes the choices to the tuning cache the server reads at its next start.
struct TuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Measure each model's CPU precision and OpenVINO hint on this machine and cache the choice.")
    @Option(help: "Comma-separated model ids (default: every installed model).") var models: String?
    @Option(help: "Wall time per candidate and measurement, in milliseconds.") var windowMs = 400

    func run() async throws {
        let config = try AppConfig.fromEnvironment()
        let store = try ModelStore(manifestURL: config.manifestURL, directory: config.modelDirectory)
        let engine = try OpenVINOEngine()
        var settings = config.tuning
        settings.mode = .auto
        let tuner = SessionTuner(settings: settings, window: .milliseconds(windowMs))
        let wanted = models.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        print("tuning on \(tuner.cpu.description); cache \(settings.cacheFile?.path ?? "(none)")")
        var rows: [[String]] = []
        for entry in store.manifest.models where wanted?.contains(entry.id) ?? true {
            guard store.status(of: entry).isOK else {
                print("\(entry.id): not installed, skipped")
                continue
            }
            let base = SessionOptions(
                device: "CPU", precision: entry.precision, inputShapes: [entry.input.name: entry.input.shape])
            let (_, record) = await tuner.tune(
                entry, base: base, path: store.url(for: entry).path, engine: engine, engineName: engine.name,
                force: true)
            for measurement in record.measurements {
                rows.append([
                    entry.id, measurement.choice.description, format(measurement.latencyMilliseconds),
                    String(format: "%.1f", measurement.throughputPerSecond), "\(measurement.requests)",
                    measurement.choice == record.chosen ? "chosen" : "",
                ])
            }
            if record.measurements.isEmpty { rows.append([entry.id, record.chosen.description, "", "", "", "set"]) }
        }
        printTable(
            header: [
                "model", "precision/hint", "latency p50 ms", "inferences/s (\(tuner.cpu.cores) callers)",
                "requests", "",
            ],
            rows: rows)
    }
}
