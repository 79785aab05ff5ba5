import Foundation
import Logging
import NIOCore
import NIOSSL

/// What the cache and the rate limiter ask of Redis, served by one server (`RedisClient`) or by a
/// cluster (`RedisClusterClient`). Every command names the key it touches, so a cluster can route it
/// by slot; a single server ignores the key.
public protocol RedisCommands: Sendable {
    func send(_ arguments: [String]) async throws -> RESPValue
    func send(bytes arguments: [[UInt8]], key: String?) async throws -> RESPValue
    /// Runs a Lua script atomically; on a cluster every key must be in one slot (hash tags).
    func eval(_ script: String, keys: [String], arguments: [String]) async throws -> RESPValue
    /// Nil when every server that holds data answers, else why not (readiness).
    func probe() async -> String?
    /// Every key that matches, across all masters of a cluster.
    func keys(matching pattern: String) async throws -> [String]
    /// `evicted_keys` of each server that holds data (its `INFO stats`), by node; a node that does
    /// not answer is left out.
    func evictedKeys() async -> [String: Int]
    var lastFailure: String? { get async }
    /// A cluster keeps its own breaker per node, so one lost master does not send every slot to
    /// local state; a single server has one breaker in `RedisGate`.
    var isCluster: Bool { get }
    func shutdown() async
}

/// Where the shared state lives: one server, or a cluster found from seed nodes. Credentials and
/// TLS come in the same URL form for both (`rediss://user:password@host:port`).
public enum RedisTarget: Sendable, Equatable {
    case server(RedisEndpoint)
    case cluster([RedisEndpoint])

    var endpoints: [RedisEndpoint] {
        switch self {
        case .server(let endpoint): [endpoint]
        case .cluster(let seeds): seeds
        }
    }
}

enum RedisTLS {
    /// A client context that verifies the server against the system's roots, or against the CA
    /// file an operator names for a private CA.
    static func context(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }
}

extension RedisTarget {
    /// The client for this target; TLS when its URL says `rediss://`.
    func makeClient(
        caFile: String?, group: any EventLoopGroup, metrics: RedisMetrics?, logger: Logger
    ) throws -> any RedisCommands {
        let tls = try endpoints.contains(where: \.tls) ? RedisTLS.context(caFile: caFile) : nil
        switch self {
        case .server(let endpoint):
            return RedisClient(endpoint: endpoint, tls: tls, group: group, metrics: metrics, logger: logger)
        case .cluster(let seeds):
            return RedisClusterClient(seeds: seeds, tls: tls, group: group, metrics: metrics, logger: logger)
        }
    }
}

extension RESPValue {
    /// A field of an `INFO` reply (`name:value` lines).
    func infoField(_ name: String) -> String? {
        guard let text = string else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
