import Foundation
import Synchronization
import Vapor

/// Fixed one-minute windows aligned to the clock, counted in Redis when it is configured (one
/// atomic script per hit, shared by every instance) and in process memory otherwise or while
/// Redis is down.
public final class RateLimiter: Sendable {
    public struct Decision: Sendable {
        public let allowed: Bool
        public let limit: Int
        public let remaining: Int
        /// Seconds until the window resets.
        public let reset: Int
        public let shared: Bool
    }

    static let window = 60
    // INCR, then set the expiry on the first hit; returns the count and the milliseconds left.
    static let script = """
        local n = redis.call('INCR', KEYS[1])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl < 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[1])
          ttl = tonumber(ARGV[1])
        end
        return {n, ttl}
        """

    let redis: RedisGate?
    private let local = Mutex<[String: (window: Int, count: Int)]>([:])

    public init(redis: RedisGate?) { self.redis = redis }

    public func hit(_ key: String, limit: Int, now: Date = Date()) async -> Decision {
        let seconds = Int(now.timeIntervalSince1970)
        let windowIndex = seconds / Self.window
        let reset = Self.window - seconds % Self.window
        if let redis {
            let redisKey = "fs:rl:\(key):\(windowIndex)"
            let ttl = String(Self.window * 1000)
            let reply = await redis.run { client in
                try await client.eval(Self.script, keys: [redisKey], arguments: [ttl])
            }
            if let items = reply?.array, items.count == 2, let count = items[0].integer {
                let count = Int(count)
                return Decision(
                    allowed: count <= limit, limit: limit, remaining: max(0, limit - count), reset: reset, shared: true)
            }
        }
        let count = local.withLock { counts -> Int in
            if counts.count > 100_000 { counts = counts.filter { $0.value.window == windowIndex } }
            var entry = counts[key] ?? (windowIndex, 0)
            if entry.window != windowIndex { entry = (windowIndex, 0) }
            entry.count += 1
            counts[key] = entry
            return entry.count
        }
        return Decision(
            allowed: count <= limit, limit: limit, remaining: max(0, limit - count), reset: reset, shared: false)
    }
}

/// Counts every `/v1` request against the client address (`scope: .ip`, before authentication)
/// or against the authenticated principal (`scope: .principal`, after it), and answers 429
/// `RATE_LIMIT_EXCEEDED` with Retry-After and `X-RateLimit-*` once a window is spent.
struct RateLimitMiddleware: AsyncMiddleware {
    enum Scope { case ip, principal }
    let limiter: RateLimiter
    let scope: Scope
    let limit: Int

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard request.url.path.hasPrefix("/v1/") else { return try await next.respond(to: request) }
        let key: String
        switch scope {
        case .ip:
            key = "ip:\(request.clientAddress ?? "unknown")"
        case .principal:
            let principal = request.principal
            guard principal.isAuthenticated else { return try await next.respond(to: request) }
            key = "\(principal.kind.rawValue):\(principal.id)"
        }
        let decision = await limiter.hit(key, limit: limit)
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: "X-RateLimit-Limit", value: String(decision.limit))
        headers.replaceOrAdd(name: "X-RateLimit-Remaining", value: String(decision.remaining))
        headers.replaceOrAdd(name: "X-RateLimit-Reset", value: String(decision.reset))
        guard decision.allowed else {
            headers.replaceOrAdd(name: "Retry-After", value: String(decision.reset))
            throw APIError(
                .tooManyRequests, "RATE_LIMIT_EXCEEDED",
                "more than \(decision.limit) requests this minute; retry in \(decision.reset) s",
                details: ["scope": scope == .ip ? "ip" : "principal"], headers: headers)
        }
        let response = try await next.respond(to: request)
        // The principal's window is the one that matters to a signed-in caller: it overrides.
        for (name, value) in headers where scope == .principal || response.headers.first(name: name) == nil {
            response.headers.replaceOrAdd(name: name, value: value)
        }
        return response
    }
}
