import Crypto
import Foundation
import Logging
import NIOCore
import NIOSSL

/// A Redis Cluster client: finds the slot map from the seed nodes, sends each command to its key's
/// master over that node's connection pool, follows `MOVED` (and remembers it) and `ASK` (with
/// `ASKING`), and refreshes the map after a redirection or a lost node. A node that fails is
/// skipped for a moment, so only its slots fall back to local state while the rest keep using the
/// cluster; retries and timeouts are bounded.
public actor RedisClusterClient: RedisCommands {
    public let seeds: [RedisEndpoint]
    private let tls: NIOSSLContext?
    private let group: any EventLoopGroup
    private let metrics: RedisMetrics?
    private let logger: Logger
    private let connectTimeout: TimeAmount
    private let commandTimeout: TimeAmount
    /// How long a failed node's slots go to local state before the node is tried again.
    let skipFailedNodeFor: Duration
    /// Redirections and cluster-busy answers followed for one command before it fails.
    static let maxAttempts = 5
    /// Refreshes come at most this often, however many redirections or failures ask for one.
    static let refreshSpacing: Duration = .milliseconds(250)

    private var clients: [ClusterNode: RedisClient] = [:]
    public private(set) var slotMap: ClusterSlotMap?
    private var failedUntil: [ClusterNode: ContinuousClock.Instant] = [:]
    private var refreshing: Task<Void, Never>?
    private var lastRefresh: ContinuousClock.Instant?
    public private(set) var lastFailure: String?
    /// Scripts by SHA, loaded per node on first use (each master keeps its own script cache).
    private var scriptSHAs: [String: String] = [:]

    public init(
        seeds: [RedisEndpoint], tls: NIOSSLContext?, group: any EventLoopGroup, metrics: RedisMetrics?,
        logger: Logger = Logger(label: "facesocial.redis"), connectTimeout: TimeAmount = .milliseconds(500),
        commandTimeout: TimeAmount = .milliseconds(500), skipFailedNodeFor: Duration = .seconds(1)
    ) {
        precondition(!seeds.isEmpty, "a cluster needs at least one seed node")
        self.seeds = seeds
        self.tls = tls
        self.group = group
        self.metrics = metrics
        self.logger = logger
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.skipFailedNodeFor = skipFailedNodeFor
    }

    public nonisolated var isCluster: Bool { true }

    public func send(_ arguments: [String]) async throws -> RESPValue {
        try await send(bytes: arguments.map { Array($0.utf8) }, key: arguments.count > 1 ? arguments[1] : nil)
    }

    public func send(bytes arguments: [[UInt8]], key: String?) async throws -> RESPValue {
        try await route(slot: key.map(ClusterSlot.of)) { client, asking in
            asking ? try await client.sendAsking(bytes: arguments) : try await client.send(bytes: arguments)
        }
    }

    public func eval(_ script: String, keys: [String], arguments: [String]) async throws -> RESPValue {
        let slots = Set(keys.map(ClusterSlot.of))
        guard slots.count <= 1 else {
            // A cross-slot script is a programming error: its keys need one hash tag.
            throw RedisError.server("CROSSSLOT keys of one script must share a hash tag: \(keys)")
        }
        let sha =
            scriptSHAs[script]
            ?? Insecure.SHA1.hash(data: Array(script.utf8)).map { String(format: "%02x", $0) }.joined()
        scriptSHAs[script] = sha
        let tail = [String(keys.count)] + keys + arguments
        return try await route(slot: slots.first) { client, asking in
            // The node loads the script the first time it runs there: EVAL carries its text.
            let first = ["EVALSHA", sha] + tail
            do {
                return asking
                    ? try await client.sendAsking(bytes: first.map { Array($0.utf8) })
                    : try await client.send(first)
            } catch RedisError.server(let message) where message.hasPrefix("NOSCRIPT") {
                let full = (["EVAL", script] + tail).map { Array($0.utf8) }
                return asking ? try await client.sendAsking(bytes: full) : try await client.send(bytes: full, key: nil)
            }
        }
    }

    /// Nil when every slot has a master that answers; otherwise which do not.
    public func probe() async -> String? {
        if slotMap == nil || !failedUntil.isEmpty { await refreshNow() }
        guard let map = slotMap else { return lastFailure ?? "no cluster node answered" }
        let masters = map.masters
        let answers = await Self.pingAll(masters.map { ($0, client(for: $0)) })
        let lost = masters.filter { answers[$0] != true }
        for node in lost { markFailed(node, RedisError.timeout) }
        for node in masters where answers[node] == true { failedUntil[node] = nil }
        var problems: [String] = []
        if !lost.isEmpty {
            problems.append("masters not answering: \(lost.map(\.description).joined(separator: ", "))")
        }
        if map.uncoveredSlots > 0 { problems.append("\(map.uncoveredSlots) slots without a master") }
        if !lost.isEmpty { refreshSoon() }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    private static func pingAll(_ nodes: [(ClusterNode, RedisClient)]) async -> [ClusterNode: Bool] {
        await withTaskGroup(of: (ClusterNode, Bool).self) { tasks in
            for (node, client) in nodes { tasks.addTask { (node, await client.ping()) } }
            return await tasks.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    public func keys(matching pattern: String) async throws -> [String] {
        await ensureSlotMap()
        guard let map = slotMap else { throw RedisError.nodeUnavailable("no slot map") }
        var found: [String] = []
        for node in map.masters { found += try await client(for: node).keys(matching: pattern) }
        return found
    }

    public func evictedKeys() async -> [String: Int] {
        var counts: [String: Int] = [:]
        for node in slotMap?.masters ?? [] {
            if let value = await client(for: node).evictedKeys().first { counts[value.key] = value.value }
        }
        return counts
    }

    public func shutdown() async {
        refreshing?.cancel()
        for client in clients.values { await client.shutdown() }
        clients.removeAll()
    }

    // MARK: Routing

    private func route(
        slot: Int?, _ operation: (RedisClient, _ asking: Bool) async throws -> RESPValue
    ) async throws -> RESPValue {
        var redirect: ClusterNode?
        var asking = false
        var last = "no attempt"
        for attempt in 1...Self.maxAttempts {
            let node: ClusterNode
            if let redirect {
                node = redirect
            } else {
                await ensureSlotMap()
                guard let map = slotMap else { throw RedisError.nodeUnavailable("no slot map") }
                guard let owner = slot.map({ map.master(for: $0) }) ?? map.masters.first else {
                    refreshSoon()
                    throw RedisError.nodeUnavailable("slot \(slot ?? -1) has no master")
                }
                node = owner
            }
            if let until = failedUntil[node], ContinuousClock.now < until {
                refreshSoon()
                // Counted like a failed command of that node, so its error rate shows the outage.
                let error = RedisError.nodeUnavailable(node.description)
                metrics?.command(node: node.description, duration: .zero, error: error)
                throw error
            }
            do {
                let reply = try await operation(client(for: node), asking)
                nodeAnswered(node)
                return reply
            } catch RedisError.server(let message) {
                let words = message.split(separator: " ")
                last = message
                switch words.first {
                case "MOVED" where words.count == 3:
                    guard let target = Self.node(String(words[2])), let moved = Int(words[1]),
                        (0..<ClusterSlot.count).contains(moved)
                    else { throw RedisError.unexpectedReply(message) }
                    metrics?.redirection("moved")
                    slotMap?.assign(slot: moved, to: target)
                    redirect = target
                    asking = false
                    refreshSoon()
                case "ASK" where words.count == 3:
                    guard let target = Self.node(String(words[2])) else { throw RedisError.unexpectedReply(message) }
                    metrics?.redirection("ask")
                    redirect = target
                    asking = true
                case "TRYAGAIN", "CLUSTERDOWN":
                    // A slot mid-migration or a cluster still electing: wait a little, ask again.
                    redirect = nil
                    asking = false
                    if words.first == "CLUSTERDOWN" { refreshSoon() }
                    try await Task.sleep(for: .milliseconds(20 * attempt))
                default:
                    throw RedisError.server(message)
                }
            } catch {
                // Refused, timed out, closed mid-reply or garbage: the node is lost for now.
                markFailed(node, error)
                refreshSoon()
                throw error
            }
        }
        throw RedisError.tooManyRedirections(last)
    }

    private func client(for node: ClusterNode) -> RedisClient {
        if let client = clients[node] { return client }
        let client = RedisClient(
            endpoint: seeds[0].at(host: node.host, port: node.port), tls: tls, group: group, maxConnections: 8,
            connectTimeout: connectTimeout, commandTimeout: commandTimeout, metrics: metrics, logger: logger,
            quiet: true)
        clients[node] = client
        return client
    }

    static func node(_ address: String) -> ClusterNode? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return nil
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return ClusterNode(host: host, port: port)
    }

    private func markFailed(_ node: ClusterNode, _ error: any Error) {
        if failedUntil[node] == nil {
            let slots = slotMap?.ranges.filter { $0.master == node }.map { "\($0.first)-\($0.last)" } ?? []
            logger.warning(
                "Redis Cluster node lost; its slots use local state until it or its replica answers",
                metadata: ["node": "\(node)", "slots": "\(slots.joined(separator: ","))", "error": "\(error)"])
        }
        failedUntil[node] = ContinuousClock.now + skipFailedNodeFor
        lastFailure = "\(node): \(error)"
    }

    private func nodeAnswered(_ node: ClusterNode) {
        if failedUntil.removeValue(forKey: node) != nil {
            logger.notice("Redis Cluster node answers again", metadata: ["node": "\(node)"])
        }
        if failedUntil.isEmpty { lastFailure = nil }
    }

    // MARK: Slot map

    /// Starts a refresh in the background unless one ran or runs within the spacing.
    private func refreshSoon() {
        guard refreshing == nil else { return }
        if let lastRefresh, ContinuousClock.now - lastRefresh < Self.refreshSpacing { return }
        refreshing = Task { await self.refresh() }
    }

    /// Waits for the running refresh, or runs one.
    private func refreshNow() async {
        if let refreshing { return await refreshing.value }
        let task = Task { await self.refresh() }
        refreshing = task
        await task.value
    }

    /// Before the first map: concurrent callers share one discovery, and while no seed answers
    /// the callers fail at once for a moment instead of each waiting out the connect timeouts.
    private func ensureSlotMap() async {
        guard slotMap == nil else { return }
        if refreshing == nil, let lastRefresh, ContinuousClock.now - lastRefresh < skipFailedNodeFor { return }
        await refreshNow()
    }

    /// Asks the known nodes (the ones not failing first), then the seeds, for `CLUSTER SLOTS`.
    func refresh() async {
        defer {
            refreshing = nil
            lastRefresh = .now
        }
        let seedNodes = seeds.map(\.node)
        var candidates: [ClusterNode] = []
        for node in (slotMap?.nodes ?? []) + seedNodes where !candidates.contains(node) { candidates.append(node) }
        let now = ContinuousClock.now
        func failing(_ node: ClusterNode) -> Bool { failedUntil[node].map { $0 > now } ?? false }
        candidates = candidates.filter { !failing($0) } + candidates.filter(failing)
        for node in candidates {
            do {
                let reply = try await client(for: node).send(["CLUSTER", "SLOTS"])
                let next = try ClusterSlotMap.parse(reply, asked: node)
                guard !next.ranges.isEmpty else { throw RedisError.unexpectedReply("CLUSTER SLOTS: no slots") }
                adopt(next)
                return
            } catch {
                if failedUntil[node] == nil || failedUntil[node]! <= now { markFailed(node, error) }
            }
        }
        lastFailure = "no cluster node answered CLUSTER SLOTS"
    }

    private func adopt(_ next: ClusterSlotMap) {
        metrics?.slotMapRefreshed()
        if let previous = slotMap {
            for (from, to) in previous.failovers(to: next) {
                metrics?.failover()
                logger.warning(
                    "Redis Cluster failover seen: a replica took over its master's slots",
                    metadata: ["from": "\(from)", "to": "\(to)"])
                failedUntil[to] = nil
            }
        } else {
            logger.info(
                "Redis Cluster slot map found",
                metadata: ["masters": "\(next.masters.map(\.description).joined(separator: ","))"])
        }
        slotMap = next
        // A lost master that the map no longer names (its replica took over) is no failure now.
        let masters = Set(next.masters)
        for node in failedUntil.keys where !masters.contains(node) { failedUntil[node] = nil }
        if failedUntil.isEmpty { lastFailure = nil }
        // Nodes no longer in the map keep no connections.
        let known = Set(next.nodes)
        for (node, client) in clients
        where !known.contains(node) && !seeds.contains(where: { $0.node == node }) {
            clients[node] = nil
            Task { await client.shutdown() }
        }
    }
}
