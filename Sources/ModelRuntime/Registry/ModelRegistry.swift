import FaceKit
import Foundation

/// Lifecycle of a model in the registry.
public enum ModelState: String, Sendable, Codable {
    case unloaded, loading, loaded, unloading, failed
}

public enum ModelRegistryError: Error, Sendable, CustomStringConvertible {
    case unknownModel(String)
    case unavailable(id: String, reason: String)

    public var description: String {
        switch self {
        case .unknownModel(let id): "no model \"\(id)\" in the manifest"
        case .unavailable(let id, let reason): "model \(id) is unavailable: \(reason)"
        }
    }
}

/// What the registry reports about one model.
public struct ModelStatus: Sendable, Codable, Equatable {
    public var id: String
    public var service: String
    public var version: String
    public var state: ModelState
    public var device: String?
    public var priority: ModelManifest.Priority
    public var failure: String?
    public var loadMilliseconds: Double?
    public var uses: Int
    public var lastUsed: Date?
}

/// Owns every loaded model: loads each lazily on first use (once, however many callers wait),
/// verifies its file against the manifest before loading, and shares one session among all
/// request handlers.
public actor ModelRegistry {
    private struct Record {
        var entry: ModelManifest.Entry
        var state: ModelState = .unloaded
        var session: (any InferenceSession)?
        var pending: Task<any InferenceSession, Error>?
        var failure: String?
        var loadMilliseconds: Double?
        var uses = 0
        var lastUsed: Date?
    }

    public nonisolated let store: ModelStore
    public nonisolated let engine: any InferenceEngine
    private let sessionOptions: @Sendable (ModelManifest.Entry) -> SessionOptions
    private var records: [String: Record]

    public init(
        store: ModelStore, engine: any InferenceEngine,
        sessionOptions: @escaping @Sendable (ModelManifest.Entry) -> SessionOptions
    ) {
        self.store = store
        self.engine = engine
        self.sessionOptions = sessionOptions
        self.records = Dictionary(uniqueKeysWithValues: store.manifest.models.map { ($0.id, Record(entry: $0)) })
    }

    /// The loaded session for `id`, loading it first if needed.
    public func session(for id: String) async throws -> any InferenceSession {
        guard var record = records[id] else { throw ModelRegistryError.unknownModel(id) }
        record.uses += 1
        record.lastUsed = Date()
        records[id] = record
        if let session = record.session { return session }
        return try await load(id)
    }

    /// Loads `id` (no-op when loaded). Concurrent callers share the one load in flight.
    @discardableResult
    public func load(_ id: String) async throws -> any InferenceSession {
        guard let record = records[id] else { throw ModelRegistryError.unknownModel(id) }
        if let session = record.session { return session }
        if let pending = record.pending { return try await pending.value }

        let entry = record.entry
        let store = self.store
        let engine = self.engine
        let options = sessionOptions(entry)
        let task = Task.detached(priority: .userInitiated) { () throws -> any InferenceSession in
            // A file changed on disk since install must never be loaded.
            let status = store.status(of: entry)
            guard status.isOK else {
                throw ModelRegistryError.unavailable(
                    id: entry.id, reason: "model file \(status.summary); run `facesocial models pull`")
            }
            do {
                return try engine.load(modelAt: store.url(for: entry).path, options: options)
            } catch {
                throw ModelRegistryError.unavailable(id: entry.id, reason: "\(error)")
            }
        }
        records[id]?.pending = task
        records[id]?.state = .loading
        let started = ContinuousClock.now
        do {
            let session = try await task.value
            let elapsed = ContinuousClock.now - started
            records[id]?.session = session
            records[id]?.state = .loaded
            records[id]?.failure = nil
            records[id]?.pending = nil
            records[id]?.loadMilliseconds =
                Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
            return session
        } catch {
            records[id]?.state = .failed
            records[id]?.failure = "\(error)"
            records[id]?.pending = nil
            throw error
        }
    }

    /// Drops the registry's reference; the session's memory is released when the last in-flight
    /// inference holding it finishes.
    public func unload(_ id: String) throws {
        guard records[id] != nil else { throw ModelRegistryError.unknownModel(id) }
        records[id]?.session = nil
        records[id]?.state = .unloaded
        records[id]?.failure = nil
    }

    public func status(_ id: String) -> ModelStatus? {
        records[id].map(Self.status)
    }

    public func statuses() -> [ModelStatus] {
        store.manifest.models.compactMap { records[$0.id].map(Self.status) }
    }

    private static func status(_ record: Record) -> ModelStatus {
        ModelStatus(
            id: record.entry.id, service: record.entry.service, version: record.entry.version, state: record.state,
            device: record.session?.device, priority: record.entry.priority, failure: record.failure,
            loadMilliseconds: record.loadMilliseconds, uses: record.uses, lastUsed: record.lastUsed)
    }
}
