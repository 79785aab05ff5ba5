import FaceKit
import Foundation
import Logging
import Synchronization

/// One way to compile a model on the CPU: the numeric precision and OpenVINO's performance hint
/// (which sets the number of streams and threads per stream).
public struct TuningChoice: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    public var precision: InferencePrecision
    public var hint: PerformanceHint

    public init(precision: InferencePrecision, hint: PerformanceHint) {
        self.precision = precision
        self.hint = hint
    }

    public var description: String { "\(precision.rawValue)/\(hint.rawValue)" }
}

/// What one candidate measured: the median single-inference time, and the inferences per second
/// with as many callers at once as the machine has cores (every core busy, as under load).
public struct TuningMeasurement: Sendable, Codable, Equatable {
    public var choice: TuningChoice
    public var latencyMilliseconds: Double
    public var throughputPerSecond: Double
    /// Infer requests the compiled model offered (its concurrency).
    public var requests: Int

    public init(choice: TuningChoice, latencyMilliseconds: Double, throughputPerSecond: Double, requests: Int) {
        self.choice = choice
        self.latencyMilliseconds = latencyMilliseconds
        self.throughputPerSecond = throughputPerSecond
        self.requests = requests
    }
}

/// The tuning of one model on one CPU: what was chosen, from what, and where it came from.
public struct TuningRecord: Sendable, Codable, Equatable {
    /// How the choice was made.
    public enum Source: String, Sendable, Codable {
        /// Measured just now on this machine.
        case measured
        /// Measured earlier on the same CPU model, for the same model file, read from the cache.
        case cached
        /// Fixed by settings (or only one candidate was allowed): nothing to measure.
        case settings
    }

    public var key: String
    public var cpu: String
    public var chosen: TuningChoice
    public var source: Source
    public var measurements: [TuningMeasurement]
    public var callers: Int
    public var measuredAt: Date?
}

/// The rule that picks a candidate from its measurements, apart from the measuring so it can be
/// tested on made-up numbers.
public enum TuningRule {
    /// Throughput within this fraction of the best counts as a tie (run-to-run noise is a few %).
    public static let tieFraction = 0.05

    /// The candidate with the highest throughput with every core busy. Among those within
    /// `tieFraction` of it: THROUGHPUT before LATENCY, then float32 before bf16, then the lower
    /// single-request latency. THROUGHPUT first because a model measured alone understates it: in
    /// the server each request also decodes and crops, and an inference that keeps one thread
    /// leaves the other cores to that work instead of making them wait for its threads. Measured:
    /// YuNet at 137 (LATENCY) against 143 (THROUGHPUT) inferences/s alone, and `/v1/detect` at 85
    /// against 98 req/s with 16 clients. float32 next because it is the reference the thresholds
    /// were measured on.
    public static func choose(_ measurements: [TuningMeasurement]) -> TuningMeasurement? {
        guard let best = measurements.map(\.throughputPerSecond).max() else { return nil }
        let close = measurements.filter { $0.throughputPerSecond >= best * (1 - tieFraction) }
        return close.min { a, b in
            if a.choice.hint != b.choice.hint { return a.choice.hint == .throughput }
            if a.choice.precision != b.choice.precision { return a.choice.precision == .f32 }
            return a.latencyMilliseconds < b.latencyMilliseconds
        }
    }

    /// The candidates a model may be compiled with: float32 always; bf16 only where the manifest
    /// allows it for that model (its accuracy was checked in bf16) and the CPU computes bf16
    /// natively; both hints. Settings narrow either axis to one value.
    public static func candidates(
        allowed: InferencePrecision, nativeBF16: Bool, precision: InferencePrecision?, hint: PerformanceHint?
    ) -> [TuningChoice] {
        var precisions: [InferencePrecision] = [.f32]
        if allowed == .bf16 && nativeBF16 { precisions.append(.bf16) }
        if let precision { precisions = precisions.contains(precision) ? [precision] : [.f32] }
        let hints: [PerformanceHint] = hint.map { [$0] } ?? [.latency, .throughput]
        return precisions.flatMap { p in hints.map { TuningChoice(precision: p, hint: $0) } }
    }
}

/// What identifies a CPU for tuning purposes: a choice measured on one CPU model holds for another
/// machine with the same model and core count, not for a different one.
public struct CPUIdentity: Sendable, Equatable {
    public var model: String
    public var cores: Int
    public var nativeBF16: Bool

    public var description: String { "\(model), \(cores) cores\(nativeBF16 ? ", native bf16" : "")" }

    public static let current: CPUIdentity = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n")
        func field(_ name: String) -> Substring? {
            lines.first { $0.hasPrefix(name) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
        }
        let model = field("model name").map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        return CPUIdentity(
            model: model, cores: ProcessInfo.processInfo.activeProcessorCount,
            nativeBF16: flags.contains("avx512_bf16") || flags.contains("amx_bf16"))
    }()
}

/// How the server tunes: measure (and cache) or take the settings as they are.
public struct TuningSettings: Sendable, Equatable {
    public enum Mode: String, Sendable { case auto, off }
    public var mode: Mode
    /// Where measured choices are kept between starts (nil: measured every start).
    public var cacheFile: URL?
    /// A hint fixed by settings; nil lets tuning choose.
    public var hint: PerformanceHint?
    /// A precision fixed by settings; nil lets tuning choose within what the manifest allows.
    public var precision: InferencePrecision?

    /// What a model compiles with when nothing is measured: the settings, else the manifest's
    /// precision with `LATENCY` (also the options for devices tuning does not apply to).
    public func untuned(_ entry: ModelManifest.Entry) -> TuningChoice {
        TuningChoice(precision: precision ?? entry.precision, hint: hint ?? .latency)
    }

    public init(
        mode: Mode = .auto, cacheFile: URL? = nil, hint: PerformanceHint? = nil, precision: InferencePrecision? = nil
    ) {
        self.mode = mode
        self.cacheFile = cacheFile
        self.hint = hint
        self.precision = precision
    }
}

/// Chooses precision and hint per model by a short measurement on the CPU that runs, at the first
/// load of a model on a CPU it has not seen (or by `facesocial tune`), and keeps the answer in a
/// JSON file keyed by CPU model, core count, engine, model hash and allowed precision. A flag or the machine the code
/// was written on decides nothing: bf16 was slower than float32 for YuNet on one CPU with native
/// bf16 and faster on another.
public final class SessionTuner: Sendable {
    public let settings: TuningSettings
    public let cpu: CPUIdentity
    /// Wall time per candidate for each of the two measurements. Short by default because a first
    /// load waits for it (an analysis that needs five untuned models waits for all five: with
    /// 200 ms windows that took over 10 s, past a graceful shutdown's wait; with 60 ms, 7 s);
    /// `facesocial tune` measures with longer windows.
    let window: Duration
    private let cache: Mutex<[String: TuningRecord]?> = Mutex(nil)
    private let logger = Logger(label: "facesocial.tuning")

    public init(settings: TuningSettings, cpu: CPUIdentity = .current, window: Duration = .milliseconds(40)) {
        self.settings = settings
        self.cpu = cpu
        self.window = window
    }

    /// The cache key of a model on this CPU and engine. The precision the manifest allows is part
    /// of it: a manifest that starts allowing bf16 has a candidate the cached answer never measured.
    public func key(for entry: ModelManifest.Entry, engine: String) -> String {
        "\(cpu.model)|\(cpu.cores) cores|\(engine)|\(entry.id)|\(entry.sha256)|allows \(entry.precision.rawValue)"
    }

    /// The options to compile `entry` with on the CPU, measured or cached, and the record of how
    /// they were chosen. `force` measures even when the cache has an answer (`facesocial tune`).
    public func tune(
        _ entry: ModelManifest.Entry, base: SessionOptions, path: String, engine: any InferenceEngine,
        engineName: String, force: Bool = false
    ) async -> (SessionOptions, TuningRecord) {
        let candidates = TuningRule.candidates(
            allowed: entry.precision, nativeBF16: cpu.nativeBF16, precision: settings.precision, hint: settings.hint)
        let key = key(for: entry, engine: engineName)
        func applied(_ choice: TuningChoice) -> SessionOptions {
            var options = base
            options.precision = choice.precision
            options.performanceHint = choice.hint
            return options
        }
        let callers = max(1, cpu.cores)
        if settings.mode == .off || candidates.count == 1 {
            let choice = settings.mode == .off ? settings.untuned(entry) : candidates[0]
            let record = TuningRecord(
                key: key, cpu: cpu.description, chosen: choice, source: .settings, measurements: [],
                callers: callers, measuredAt: nil)
            return (applied(choice), record)
        }
        if !force, var known = cached(key), candidates.contains(known.chosen) {
            known.source = .cached
            return (applied(known.chosen), known)
        }
        // Every candidate compiled once, then measured in rounds that alternate between them, each
        // keeping its best round: a burst of other work on the machine then slows one round of
        // every candidate instead of all the rounds of one.
        var sessions: [(TuningChoice, any InferenceSession)] = []
        for choice in candidates {
            var options = applied(choice)
            options.maxBatch = 1
            options.flexibleSizeMultiple = nil  // measured on the declared shape; no second compile
            do {
                sessions.append((choice, try engine.load(modelAt: path, options: options)))
            } catch {
                logger.warning(
                    "tuning candidate failed to compile",
                    metadata: [
                        "model": .string(entry.id), "candidate": .string(choice.description),
                        "error": .string("\(error)"),
                    ])
            }
        }
        var best: [TuningChoice: TuningMeasurement] = [:]
        for _ in 0..<Self.rounds {
            for (choice, session) in sessions {
                guard let m = try? await measure(choice, session: session) else { continue }
                let kept = best[choice]
                best[choice] = TuningMeasurement(
                    choice: choice,
                    latencyMilliseconds: min(m.latencyMilliseconds, kept?.latencyMilliseconds ?? .infinity),
                    throughputPerSecond: max(m.throughputPerSecond, kept?.throughputPerSecond ?? 0),
                    requests: m.requests)
            }
        }
        sessions.removeAll()
        let measurements = candidates.compactMap { best[$0] }
        guard let best = TuningRule.choose(measurements) else {
            let fallback = TuningChoice(precision: .f32, hint: .latency)
            let record = TuningRecord(
                key: key, cpu: cpu.description, chosen: fallback, source: .settings, measurements: [],
                callers: callers, measuredAt: nil)
            return (applied(fallback), record)
        }
        let record = TuningRecord(
            key: key, cpu: cpu.description, chosen: best.choice, source: .measured, measurements: measurements,
            callers: callers, measuredAt: Date())
        store(record)
        logger.info(
            "tuned model for this CPU",
            metadata: [
                "model": .string(entry.id), "cpu": .string(cpu.description), "chosen": .string(best.choice.description),
                "candidates": .string(
                    measurements.map {
                        "\($0.choice): \(String(format: "%.2f", $0.latencyMilliseconds)) ms, "
                            + "\(String(format: "%.1f", $0.throughputPerSecond))/s"
                    }.joined(separator: "; ")),
            ])
        return (applied(best.choice), record)
    }

    /// Measuring rounds per candidate.
    static let rounds = 2

    /// Times single inferences, then `cores` callers at once, each for about `window` of wall time
    /// (at least a few inferences each).
    private func measure(_ choice: TuningChoice, session: any InferenceSession) async throws -> TuningMeasurement {
        let inputs = Dictionary(
            uniqueKeysWithValues: session.inputs.map { info in
                let shape = info.shape.map { $0 < 0 ? 1 : $0 }
                let count = shape.reduce(1, *)
                // A fixed, non-constant pattern: all-zero inputs can take shortcuts real ones do not.
                return (info.name, Tensor(shape: shape, data: (0..<count).map { Float(($0 * 37) % 251) }))
            })
        for _ in 0..<3 { _ = try await session.infer(inputs) }

        var samples: [Double] = []
        let latencyStart = ContinuousClock.now
        while samples.count < 5 || (ContinuousClock.now - latencyStart < window && samples.count < 200) {
            let started = ContinuousClock.now
            _ = try await session.infer(inputs)
            samples.append((ContinuousClock.now - started).milliseconds)
        }
        samples.sort()

        let callers = max(1, cpu.cores)
        let window = self.window
        let started = ContinuousClock.now
        let done = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var count = 0
                    while count < 3 || ContinuousClock.now - started < window {
                        _ = try await session.infer(inputs)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let seconds = (ContinuousClock.now - started).milliseconds / 1000
        return TuningMeasurement(
            choice: choice, latencyMilliseconds: samples[samples.count / 2],
            throughputPerSecond: Double(done) / max(seconds, 1e-6), requests: session.concurrency)
    }

    // MARK: - Cache

    private func cached(_ key: String) -> TuningRecord? {
        cache.withLock { cache in
            if cache == nil { cache = Self.read(settings.cacheFile) }
            return cache?[key]
        }
    }

    private func store(_ record: TuningRecord) {
        cache.withLock { cache in
            var all = cache ?? Self.read(settings.cacheFile)
            all[record.key] = record
            cache = all
            guard let file = settings.cacheFile else { return }
            do {
                try FileManager.default.createDirectory(
                    at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                try encoder.encode(all).write(to: file, options: .atomic)
            } catch {
                logger.warning(
                    "could not write the tuning cache",
                    metadata: ["file": .string(file.path), "error": .string("\(error)")])
            }
        }
    }

    private static func read(_ file: URL?) -> [String: TuningRecord] {
        guard let file, let data = try? Data(contentsOf: file) else { return [:] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        // A cache from another version that no longer decodes is measured anew, not an error.
        return (try? decoder.decode([String: TuningRecord].self, from: data)) ?? [:]
    }
}
