import Foundation
import Logging

/// Picks the engine for each device ("CPU" → OpenVINO by default, "CUDA:0" → ONNX Runtime...) and
/// falls back to CPU when an accelerator cannot be attached: the reason is logged once, kept for
/// `/system/vram`, and the model is served on CPU instead of failing the request.
public final class EngineRouter: InferenceEngine, @unchecked Sendable {
    private struct State {
        var availability: [String: DeviceAvailability] = [:]
        var fallbacks: [String: Int] = [:]
    }

    // `engines` is immutable; `state` is only touched under `lock`.
    private let engines: [String: any InferenceEngine]
    private let logger: Logger
    private let lock = NSLock()
    private var state = State()

    public let name = "router"
    public let fallbackDevice = "CPU"

    /// `engines` maps a device kind ("CPU", "CUDA", "TENSORRT") to the engine that serves it; there
    /// must be one for "CPU".
    public init(engines: [String: any InferenceEngine], logger: Logger = Logger(label: "facesocial.engines")) {
        precondition(engines["CPU"] != nil, "the router needs a CPU engine to fall back to")
        self.engines = Dictionary(uniqueKeysWithValues: engines.map { ($0.key.uppercased(), $0.value) })
        self.logger = logger
    }

    public func engine(for device: String) -> (any InferenceEngine)? { engines[DeviceName(device).kind] }

    /// Checks each device once (engines that can check without a model) and logs the ones that
    /// are unavailable.
    public func probe(_ devices: [String]) {
        for device in devices where DeviceName(device).kind != "CPU" {
            guard let engine = engine(for: device) else {
                record(
                    DeviceAvailability(
                        device: device, engine: "none", available: false,
                        reason: "no engine is configured for \(DeviceName(device).kind) devices"))
                continue
            }
            let result =
                (engine as? any DeviceProbing)?.probe(device: device)
                ?? DeviceAvailability(device: device, engine: engine.name, available: true)
            record(result)
        }
    }

    /// What is known about every device asked for so far (the CPU is always available).
    public func deviceAvailability() -> [DeviceAvailability] {
        let cpu = DeviceAvailability(device: "CPU", engine: engines["CPU"]!.name, available: true)
        return [cpu] + lock.withLock { state.availability.values.sorted { $0.device < $1.device } }
    }

    /// Models placed on CPU because their device was unavailable, by the device asked for.
    public func fallbackCounts() -> [String: Int] { lock.withLock { state.fallbacks } }

    public func availableDevices() throws -> [String] {
        let unavailable = Set(deviceAvailability().filter { !$0.available }.map(\.device))
        var devices: [String] = []
        for (kind, engine) in engines.sorted(by: { $0.key < $1.key }) {
            for device in try engine.availableDevices() where DeviceName(device).kind == kind {
                if !unavailable.contains(device) { devices.append(device) }
            }
        }
        return devices
    }

    public func load(modelAt path: String, options: SessionOptions) throws -> any InferenceSession {
        let device = options.device
        guard DeviceName(device).kind != "CPU" else { return try engines["CPU"]!.load(modelAt: path, options: options) }
        if let known = lock.withLock({ state.availability[device] }), !known.available {
            return try fallback(path, options)
        }
        guard let engine = engine(for: device) else {
            probe([device])
            return try fallback(path, options)
        }
        do {
            return try engine.load(modelAt: path, options: options)
        } catch let error as DeviceUnavailableError {
            record(DeviceAvailability(device: device, engine: engine.name, available: false, reason: error.reason))
            return try fallback(path, options)
        }
    }

    private func fallback(_ path: String, _ options: SessionOptions) throws -> any InferenceSession {
        lock.withLock { state.fallbacks[options.device, default: 0] += 1 }
        var cpu = options
        cpu.device = fallbackDevice
        return try engines["CPU"]!.load(modelAt: path, options: cpu)
    }

    /// Keeps the newest finding per device; logs a device becoming unavailable only once.
    private func record(_ availability: DeviceAvailability) {
        let previous = lock.withLock {
            let previous = state.availability[availability.device]
            state.availability[availability.device] = availability
            return previous
        }
        if !availability.available, previous?.available != false {
            logger.warning(
                "device unavailable; serving its models on CPU",
                metadata: [
                    "device": .string(availability.device), "engine": .string(availability.engine),
                    "reason": .string(availability.reason ?? "unknown"),
                ])
        }
    }
}
