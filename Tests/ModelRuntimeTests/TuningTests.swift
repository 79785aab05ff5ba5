import FaceKit
import Foundation
import Synchronization
import Testing

@testable import ModelRuntime

/// An engine whose sessions answer at once and count how often anything was compiled, so the
/// tuner's cache and settings rules can be checked without model files or timing.
final class CountingEngine: InferenceEngine, Sendable {
    let name = "openvino"
    let compiled = Mutex<[SessionOptions]>([])

    final class Session: InferenceSession, Sendable {
        let inputs = [TensorInfo(name: "input", shape: [1, 3, 8, 8])]
        let outputs = [TensorInfo(name: "out", shape: [1, 1])]
        let device = "CPU"
        let concurrency: Int
        init(concurrency: Int) { self.concurrency = concurrency }
        func infer(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
            ["out": Tensor(shape: [1, 1], data: [0])]
        }
    }

    func availableDevices() throws -> [String] { ["CPU"] }
    func load(modelAt path: String, options: SessionOptions) throws -> any InferenceSession {
        compiled.withLock { $0.append(options) }
        return Session(concurrency: options.performanceHint == .throughput ? 2 : 1)
    }
}

func tuningEntry(precision: InferencePrecision, sha: String = String(repeating: "a", count: 64)) throws
    -> ModelManifest.Entry
{
    var entry = try #require(try ModelManifest.load(from: manifestURL).entry("yunet"))
    entry.precision = precision
    entry.sha256 = sha
    return entry
}

@Suite("CPU tuning")
struct TuningTests {
    func measurement(_ precision: InferencePrecision, _ hint: PerformanceHint, ms: Double, perSecond: Double)
        -> TuningMeasurement
    {
        TuningMeasurement(
            choice: TuningChoice(precision: precision, hint: hint), latencyMilliseconds: ms,
            throughputPerSecond: perSecond, requests: 1)
    }

    @Test func theRuleTakesTheHighestThroughputAndBreaksTiesByHintThenPrecisionThenLatency() {
        // Clear winner on throughput, even with a worse single-request latency.
        let a = [
            measurement(.f32, .latency, ms: 3, perSecond: 300), measurement(.f32, .throughput, ms: 5, perSecond: 420),
            measurement(.bf16, .latency, ms: 4, perSecond: 250),
        ]
        #expect(TuningRule.choose(a)?.choice == TuningChoice(precision: .f32, hint: .throughput))
        // A clear winner with LATENCY stays LATENCY.
        let b = [
            measurement(.f32, .latency, ms: 3, perSecond: 500), measurement(.f32, .throughput, ms: 5, perSecond: 415),
        ]
        #expect(TuningRule.choose(b)?.choice == TuningChoice(precision: .f32, hint: .latency))
        // Within 5 % on throughput: THROUGHPUT, though its latency is worse (YuNet here: 137 vs 143/s).
        let tie = [
            measurement(.f32, .latency, ms: 7.3, perSecond: 136.8),
            measurement(.f32, .throughput, ms: 15.7, perSecond: 143.4),
        ]
        #expect(TuningRule.choose(tie)?.choice == TuningChoice(precision: .f32, hint: .throughput))
        // Tied on throughput with the same hint: float32, the reference precision, even if slower alone.
        let c = [
            measurement(.bf16, .latency, ms: 2.0, perSecond: 400),
            measurement(.f32, .latency, ms: 3.05, perSecond: 398),
        ]
        #expect(TuningRule.choose(c)?.choice == TuningChoice(precision: .f32, hint: .latency))
        // bf16 clearly faster: bf16.
        let d = [
            measurement(.f32, .latency, ms: 6, perSecond: 200), measurement(.bf16, .latency, ms: 3, perSecond: 390),
        ]
        #expect(TuningRule.choose(d)?.choice.precision == .bf16)
        #expect(TuningRule.choose([]) == nil)
    }

    @Test func bf16IsACandidateOnlyWhereTheManifestAllowsItAndTheCPUHasIt() {
        let all = TuningRule.candidates(allowed: .bf16, nativeBF16: true, precision: nil, hint: nil)
        #expect(all.count == 4)
        #expect(TuningRule.candidates(allowed: .bf16, nativeBF16: false, precision: nil, hint: nil).count == 2)
        #expect(
            TuningRule.candidates(allowed: .f32, nativeBF16: true, precision: nil, hint: nil).allSatisfy {
                $0.precision == .f32
            })
        // A bf16 setting cannot put a float32-only model into bf16.
        #expect(
            TuningRule.candidates(allowed: .f32, nativeBF16: true, precision: .bf16, hint: nil).allSatisfy {
                $0.precision == .f32
            })
        #expect(
            TuningRule.candidates(allowed: .bf16, nativeBF16: true, precision: .bf16, hint: .throughput)
                == [TuningChoice(precision: .bf16, hint: .throughput)])
    }

    @Test func aMeasuredChoiceIsCachedPerCPUAndModelHashAndReadBackWithoutCompiling() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-tuning-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("tuning.json")
        let cpu = CPUIdentity(model: "Test CPU", cores: 2, nativeBF16: true)
        let entry = try tuningEntry(precision: .bf16)
        let engine = CountingEngine()
        let first = SessionTuner(settings: TuningSettings(cacheFile: file), cpu: cpu, window: .milliseconds(5))
        let (options, record) = await first.tune(
            entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
        #expect(record.source == .measured)
        #expect(record.measurements.count == 4)
        #expect(options.precision == record.chosen.precision && options.performanceHint == record.chosen.hint)
        #expect(engine.compiled.withLock { $0.count } == 4)
        #expect(FileManager.default.fileExists(atPath: file.path))

        // A new process (a new tuner) on the same CPU reads the file and compiles nothing.
        let second = SessionTuner(settings: TuningSettings(cacheFile: file), cpu: cpu, window: .milliseconds(5))
        let (_, again) = await second.tune(
            entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
        #expect(again.source == .cached)
        #expect(again.chosen == record.chosen)
        #expect(engine.compiled.withLock { $0.count } == 4)

        // Another CPU model, or another model file, is measured anew.
        let otherCPU = SessionTuner(
            settings: TuningSettings(cacheFile: file), cpu: CPUIdentity(model: "Other CPU", cores: 2, nativeBF16: true),
            window: .milliseconds(5))
        #expect(
            await otherCPU.tune(entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino").1
                .source == .measured)
        let changed = try tuningEntry(precision: .bf16, sha: String(repeating: "b", count: 64))
        #expect(
            await second.tune(changed, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
                .1.source == .measured)
        // A manifest entry that now allows only float32 (or newly allows bf16) is measured anew.
        let narrowed = try tuningEntry(precision: .f32)
        #expect(
            await second.tune(narrowed, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
                .1.source == .measured)
        // `facesocial tune` measures even with an answer cached.
        #expect(
            await second.tune(
                entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino", force: true
            ).1.source == .measured)
    }

    @Test func settingsFixWhatTheyNameAndOffMeasuresNothing() async throws {
        let cpu = CPUIdentity(model: "Test CPU", cores: 2, nativeBF16: true)
        let engine = CountingEngine()
        let entry = try tuningEntry(precision: .bf16)
        let off = SessionTuner(settings: TuningSettings(mode: .off), cpu: cpu)
        let (options, record) = await off.tune(
            entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
        #expect(record.source == .settings)
        #expect(options.precision == .bf16 && options.performanceHint == .latency)
        // Both axes fixed: one candidate, nothing to measure.
        let fixed = SessionTuner(
            settings: TuningSettings(hint: .throughput, precision: .f32), cpu: cpu, window: .milliseconds(5))
        let (fixedOptions, fixedRecord) = await fixed.tune(
            entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
        #expect(fixedRecord.source == .settings)
        #expect(fixedOptions.precision == .f32 && fixedOptions.performanceHint == .throughput)
        #expect(engine.compiled.withLock { $0.isEmpty })
        // One axis fixed: only the other is measured.
        let hintOnly = SessionTuner(settings: TuningSettings(hint: .latency), cpu: cpu, window: .milliseconds(5))
        let (_, hintRecord) = await hintOnly.tune(
            entry, base: SessionOptions(), path: "unused", engine: engine, engineName: "openvino")
        #expect(hintRecord.measurements.map(\.choice.hint) == [.latency, .latency])
    }

    @Test func tuningTheRealDetectorMeasuresEveryCandidateOnThisCPU() async throws {
        let store = try ModelStore(manifestURL: manifestURL, directory: modelDirectory)
        let entry = try #require(store.manifest.entry("yunet"))
        let tuner = SessionTuner(settings: TuningSettings(), window: .milliseconds(50))
        let (options, record) = await tuner.tune(
            entry, base: SessionOptions(inputShapes: [entry.input.name: entry.input.shape]),
            path: store.url(for: entry).path, engine: try OpenVINOEngine(), engineName: "openvino")
        let expected = TuningRule.candidates(
            allowed: entry.precision, nativeBF16: CPUIdentity.current.nativeBF16, precision: nil, hint: nil)
        #expect(record.source == .measured)
        #expect(record.measurements.map(\.choice) == expected)
        for m in record.measurements {
            #expect(m.latencyMilliseconds > 0 && m.throughputPerSecond > 0 && m.requests >= 1)
        }
        #expect(expected.contains(record.chosen))
        #expect(options.precision == record.chosen.precision)
        // The chosen options compile and detect.
        _ = try OpenVINOEngine().load(modelAt: store.url(for: entry).path, options: options)
    }
}
