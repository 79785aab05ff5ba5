import Foundation

/// Lifecycle of a model in the memory manager.
public enum ModelState: String, Sendable, Codable {
    case unloaded, loading, loaded, unloading, failed
}

public enum ModelRegistryError: Error, Sendable, CustomStringConvertible {
    case unknownModel(String)
    case unavailable(id: String, reason: String)
    /// No pool in the model's placement order can hold it, even after evicting what may be evicted.
    case insufficientMemory(id: String, neededBytes: Int, reasons: [String])
    case unknownTarget(String)
    /// Critical and preloaded models stay loaded while the server runs; readiness depends on them.
    case pinned(String)

    public var description: String {
        switch self {
        case .unknownModel(let id): "no model \"\(id)\" in the manifest"
        case .unavailable(let id, let reason): "model \(id) is unavailable: \(reason)"
        case .insufficientMemory(let id, let needed, let reasons):
            "model \(id) (\(needed) bytes) fits in no memory pool: " + reasons.joined(separator: "; ")
        case .unknownTarget(let target): "no device or pool \"\(target)\""
        case .pinned(let id):
            "model \(id) is pinned (critical, or listed in FACESOCIAL_PRELOAD_MODELS): it stays loaded while the server runs"
        }
    }
}

/// Why a model left memory.
public enum EvictionReason: String, Sendable, Codable {
    /// Another model needed its room.
    case capacity
    /// Unused for longer than its class's idle TTL.
    case idleTTL = "idle_ttl"
    /// An operator asked (`POST /system/models/{id}/unload`).
    case manual
}

/// What happened to a model, for metrics.
public enum ModelEvent: Sendable {
    case loaded(model: String, device: String, pool: String, seconds: Double)
    case inference(model: String, device: String, seconds: Double)
    case evicted(model: String, reason: EvictionReason)
    case fallback(model: String, from: String, to: String)
}

/// What the manager reports about one model.
public struct ModelStatus: Sendable, Codable, Equatable {
    public var id: String
    public var service: ModelManifest.ModelRole
    public var version: String
    public var state: ModelState
    public var device: String?
    public var pool: String?
    public var priority: ModelManifest.Priority
    public var failure: String?
    public var loadMilliseconds: Double?
    public var uses: Int
    public var lastUsed: Date?
    /// The footprint charged to the pool: measured at load when loaded, else the prior.
    public var bytes: Int?
    /// "device" (the device's memory counter), "rss" (process RSS delta) or "estimate".
    public var bytesSource: String?
    public var estimatedBytes: Int
    /// What the last unload gave back to the kernel (RSS before − after).
    public var freedBytes: Int?
    public var loads: Int
    public var fallbacks: Int
    public var evictions: Int
    public var placement: [String]
    public var concurrency: Int?
    public var maxBatch: Int?
    public var running: Int
    public var queued: Int
    public var p50Milliseconds: Double?
    public var p95Milliseconds: Double?
    /// How the CPU compile options were chosen (OpenVINO on CPU only; nil elsewhere or before a load).
    public var tuning: TuningRecord? = nil
    /// The manifest's licence, and the opt-in word it needs (nil when none).
    public var licence: String = ""
    public var licenceOptIn: String? = nil
    /// False for a model whose restricted licence the operator has not accepted: never loaded.
    public var enabled: Bool = true
}

/// One pool as the manager accounts it.
public struct PoolStatus: Sendable, Codable, Equatable {
    public var name: String
    public var budgetBytes: Int
    public var usedBytes: Int
    public var reservedBytes: Int
    public var models: [String: Int]
}

/// One device with its budget and pools.
public struct DeviceStatus: Sendable, Codable, Equatable {
    public var name: String
    public var kind: DeviceKind
    public var placeable: Bool
    public var totalBytes: Int
    public var budgetBytes: Int
    public var pools: [PoolStatus]
    public var reading: DeviceReading
    /// Why a listed device receives no models (not configured, or its engine could not attach it).
    public var unavailableReason: String?
}
