import Prometheus
import Synchronization

/// The Redis series the deployment guide watches: command latency and errors by node, cluster
/// redirections followed, slot-map refreshes and failovers seen. Counted here as well, so tests and
/// the readiness answer can read them without a scrape.
public final class RedisMetrics: Sendable {
    public struct Counts: Sendable, Equatable {
        public var commands = 0
        public var errors = 0
        public var moved = 0
        public var ask = 0
        public var refreshes = 0
        public var failovers = 0
    }

    private let registry = Mutex<PrometheusCollectorRegistry?>(nil)
    private let state = Mutex(Counts())

    static let buckets: [Duration] = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500].map { .milliseconds($0) }

    public init() {}

    public var counts: Counts { state.withLock { $0 } }

    /// Starts the cluster counters at zero so their rates (and the alert) are defined at once.
    func export(to registry: PrometheusCollectorRegistry) {
        self.registry.withLock { $0 = registry }
        for kind in ["moved", "ask"] {
            _ = registry.makeCounter(name: "redis_redirections_total", labels: [("kind", kind)])
        }
        _ = registry.makeCounter(name: "redis_cluster_failovers_total")
        _ = registry.makeCounter(name: "redis_cluster_slot_map_refreshes_total")
    }

    func command(node: String, duration: Duration, error: (any Error)?) {
        // A redirection is the cluster working as designed, not an error of the node.
        let error = error.flatMap { Self.kind($0) == "redirect" ? nil : $0 }
        state.withLock {
            $0.commands += 1
            if error != nil { $0.errors += 1 }
        }
        guard let registry = registry.withLock({ $0 }) else { return }
        registry.makeDurationHistogram(
            name: "redis_command_duration_seconds", labels: [("node", node)], buckets: Self.buckets
        ).record(duration)
        if let error {
            registry.makeCounter(
                name: "redis_command_errors_total", labels: [("node", node), ("kind", Self.kind(error))]
            )
            .increment()
        }
    }

    func redirection(_ kind: String) {
        state.withLock { if kind == "ask" { $0.ask += 1 } else { $0.moved += 1 } }
        registry.withLock { $0 }?.makeCounter(name: "redis_redirections_total", labels: [("kind", kind)]).increment()
    }

    func slotMapRefreshed() {
        state.withLock { $0.refreshes += 1 }
        registry.withLock { $0 }?.makeCounter(name: "redis_cluster_slot_map_refreshes_total").increment()
    }

    func failover() {
        state.withLock { $0.failovers += 1 }
        registry.withLock { $0 }?.makeCounter(name: "redis_cluster_failovers_total").increment()
    }

    /// A bounded label: what went wrong, never the message.
    static func kind(_ error: any Error) -> String {
        switch error as? RedisError {
        case .timeout: "timeout"
        case .connectionClosed: "closed"
        case .server(let message) where message.hasPrefix("MOVED") || message.hasPrefix("ASK"): "redirect"
        case .server: "server"
        case .nodeUnavailable: "unavailable"
        case .unexpectedReply: "protocol"
        case .tooManyRedirections: "redirect"
        case .invalidURL: "config"
        case nil: error is RESPParseError ? "protocol" : "connect"
        }
    }
}

extension RedisGate {
    /// `redis_evicted_keys{node}`: keys the servers themselves dropped under `maxmemory`, read at
    /// scrape time (the result cache's other eviction count is the in-memory one).
    func exportServerMetrics(to registry: PrometheusCollectorRegistry) async {
        for (node, count) in await client.evictedKeys() {
            registry.makeGauge(name: "redis_evicted_keys", labels: [("node", node)]).set(Double(count))
        }
    }
}
