import Crypto
import Foundation
import Prometheus
import Synchronization

/// Hit and miss counts of the result cache, also exported as `cache_hits_total` /
/// `cache_misses_total` (labelled by route) once a metrics registry is attached.
public final class CacheStatistics: Sendable {
    private let counts = Mutex<(hits: Int, misses: Int)>((0, 0))
    private let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    public var hits: Int { counts.withLock { $0.hits } }
    public var misses: Int { counts.withLock { $0.misses } }

    /// Exports to `registry`, starting every cached route's series at zero so the hit rate is
    /// defined (and alerting works) before the first request.
    func export(to registry: PrometheusCollectorRegistry, routes: [String]) {
        self.registry.withLock { $0 = registry }
        _ = registry.makeCounter(name: "cache_evictions_total", labels: [("store", "memory")])
        for route in routes {
            _ = registry.makeCounter(name: "cache_hits_total", labels: [("route", route)])
            _ = registry.makeCounter(name: "cache_misses_total", labels: [("route", route)])
        }
    }

    /// Entries the in-memory store dropped to stay within its bound (Redis's own evictions are
    /// `redis_evicted_keys`, read from the servers at scrape time).
    func recordEvictions(_ count: Int) {
        registry.withLock { $0 }?.makeCounter(name: "cache_evictions_total", labels: [("store", "memory")])
            .increment(by: Int64(count))
    }

    func record(hit: Bool, route: String) {
        counts.withLock { counts in
            if hit { counts.hits += 1 } else { counts.misses += 1 }
        }
        registry.withLock { $0 }?.makeCounter(
            name: hit ? "cache_hits_total" : "cache_misses_total", labels: [("route", route)]
        )
        .increment()
    }
}

/// Results of the stateless routes, keyed by a digest of the image bytes, the model versions and
/// the normalised parameters. Values are the JSON response data: never the image. Redis holds them
/// when configured (shared by instances); process memory (LRU) otherwise or while Redis is down.
public final class ResultCache: Sendable {
    public let ttl: Int
    public let statistics: CacheStatistics
    let redis: RedisGate?
    private let memory: MemoryLRU

    public init(ttl: Int, maxEntries: Int, redis: RedisGate?) {
        self.ttl = ttl
        self.redis = redis
        let statistics = CacheStatistics()
        self.statistics = statistics
        self.memory = MemoryLRU(capacity: maxEntries) { statistics.recordEvictions($0) }
    }

    public var isEnabled: Bool { ttl > 0 }

    /// `fs:result:<route>:<sha256(image sha256, models, parameters)>`. The image digest goes
    /// through a second hash so the key does not even reveal which image was analysed.
    public static func key(route: String, image: [UInt8], models: String, parameters: [String: String]) -> String {
        let imageDigest = Secrets.hex(SHA256.hash(data: image))
        let normalised = parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        let material = [route, imageDigest, models, normalised].joined(separator: "\n")
        return "fs:result:\(route):\(Secrets.sha256Hex(material))"
    }

    /// The request's key, or nil while the cache is off: the key hashes the whole image, which is
    /// only worth it when something is looked up.
    public func requestKey(route: String, image: [UInt8], models: String, parameters: [String: String]) -> String? {
        isEnabled ? Self.key(route: route, image: image, models: models, parameters: parameters) : nil
    }

    public func get(_ key: String, route: String) async -> Data? {
        guard isEnabled else { return nil }
        var value: Data?
        if let redis,
            let reply = await redis.run({ try await $0.send(bytes: [Array("GET".utf8), Array(key.utf8)], key: key) })
        {
            value = reply.bytes.map { Data($0) }
        } else {
            value = memory.get(key)
        }
        statistics.record(hit: value != nil, route: route)
        return value
    }

    public func set(_ key: String, _ value: Data) async {
        guard isEnabled else { return }
        if let redis {
            let stored = await redis.run { client in
                try await client.send(
                    bytes: [
                        Array("SET".utf8), Array(key.utf8), Array(value), Array("EX".utf8),
                        Array(String(self.ttl).utf8),
                    ], key: key)
            }
            if stored != nil { return }
        }
        memory.set(key, value, ttl: ttl)
    }

    /// Drops every cached result. Results are per image, not per subject, so erasing a subject
    /// needs no cache work; this is for operators (and tests).
    public func removeAll() async {
        memory.removeAll()
        _ = await redis?.run { client in
            // One DEL per key: on a cluster the keys lie in different slots.
            for key in try await client.keys(matching: "fs:result:*") { _ = try await client.send(["DEL", key]) }
        }
    }
}

/// A least-recently-used map with expiry, bounded by entry count.
final class MemoryLRU: Sendable {
    private struct State {
        var values: [String: (data: Data, expires: ContinuousClock.Instant, tick: UInt64)] = [:]
        var tick: UInt64 = 0
    }
    private let state = Mutex(State())
    let capacity: Int
    private let onEvict: @Sendable (Int) -> Void

    init(capacity: Int, onEvict: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.capacity = capacity
        self.onEvict = onEvict
    }

    func get(_ key: String) -> Data? {
        state.withLock { state in
            guard let entry = state.values[key] else { return nil }
            guard ContinuousClock.now < entry.expires else {
                state.values[key] = nil
                return nil
            }
            state.tick += 1
            state.values[key] = (entry.data, entry.expires, state.tick)
            return entry.data
        }
    }

    func set(_ key: String, _ data: Data, ttl: Int) {
        guard capacity > 0 else { return }
        let evicted = state.withLock { state -> Int in
            state.tick += 1
            state.values[key] = (data, ContinuousClock.now + .seconds(ttl), state.tick)
            if state.values.count > capacity {
                // Evict the oldest tenth at once, so eviction is rare rather than per insert.
                let drop = max(1, capacity / 10)
                let oldest = state.values.sorted { $0.value.tick < $1.value.tick }.prefix(drop).map(\.key)
                oldest.forEach { state.values[$0] = nil }
                return oldest.count
            }
            return 0
        }
        if evicted > 0 { onEvict(evicted) }
    }

    func removeAll() { state.withLock { $0.values.removeAll() } }
    var count: Int { state.withLock { $0.values.count } }
}

/// What a cached response holds besides its data: the models that produced it (for `meta`).
struct CachedResult<T: Codable>: Codable {
    let data: T
    let models: [String]
}

extension FaceService {
    /// Every model id and version of the manifest: a model upgrade invalidates cached results.
    var modelFingerprint: String {
        registry.store.manifest.models.map { "\($0.id)@\($0.version)" }.sorted().joined(separator: ",")
    }
}

extension ResultCache {
    /// The cached data for `key`, with its models recorded on the request; nil on a miss.
    func lookup<T: Codable>(_ key: String, route: String, as: T.Type, context: RequestContext) async -> T? {
        guard let data = await get(key, route: route),
            let cached = try? JSONDecoder().decode(CachedResult<T>.self, from: data)
        else { return nil }
        for model in cached.models { context.used(model) }
        return cached.data
    }

    func store<T: Codable>(_ key: String, _ value: T, context: RequestContext) async {
        guard isEnabled, let data = try? JSONEncoder().encode(CachedResult(data: value, models: context.models)) else {
            return
        }
        await set(key, data)
    }
}
