import Foundation
import Synchronization

/// Redis behind a short circuit breaker: after a failure, callers skip Redis for a while and use
/// their local fallback at once, so an outage adds no latency to requests and never fails one. A
/// cluster client breaks per node instead (one lost master sends only its slots to local state).
public final class RedisGate: Sendable {
    public let client: any RedisCommands
    public let metrics: RedisMetrics?
    private let openUntil = Mutex<ContinuousClock.Instant?>(nil)
    private let failure = Mutex<String?>(nil)
    let backoff: Duration

    public init(client: any RedisCommands, metrics: RedisMetrics? = nil, backoff: Duration = .seconds(2)) {
        self.client = client
        self.metrics = metrics
        self.backoff = backoff
    }

    /// The operation's result, or nil when Redis is unavailable (now or recently).
    public func run<T: Sendable>(_ operation: @Sendable (any RedisCommands) async throws -> T) async -> T? {
        if let until = openUntil.withLock({ $0 }), ContinuousClock.now < until { return nil }
        do {
            let result = try await operation(client)
            openUntil.withLock { $0 = nil }
            failure.withLock { $0 = nil }
            return result
        } catch {
            if !client.isCluster { openUntil.withLock { $0 = ContinuousClock.now + backoff } }
            failure.withLock { $0 = "\(error)" }
            return nil
        }
    }

    /// Readiness probes Redis even while the breaker is open, so recovery shows at once.
    public func probe() async -> String? {
        guard let reason = await client.probe() else {
            openUntil.withLock { $0 = nil }
            failure.withLock { $0 = nil }
            return nil
        }
        failure.withLock { $0 = reason }
        return reason
    }

    public var lastFailure: String? { failure.withLock { $0 } }
}
