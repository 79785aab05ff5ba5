import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The cluster client's plain rules: slots, seed lists, slot maps. No server.
@Suite("Redis Cluster rules")
struct RedisClusterRuleTests {
    @Test func slotsFollowTheClusterSpecification() {
        // The specification's check value: CRC16/XMODEM("123456789") = 0x31C3.
        #expect(ClusterSlot.crc16(Array("123456789".utf8)[...]) == 0x31C3)
        #expect(ClusterSlot.of("123456789") == 0x31C3 & 0x3FFF)
        // Hash tags: keys with the same tag share a slot; an empty tag hashes the whole key.
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("user1000"))
        #expect(ClusterSlot.of("foo{}{bar}") == Int(ClusterSlot.crc16(Array("foo{}{bar}".utf8)[...]) & 0x3FFF))
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"))
        #expect(ClusterSlot.of("foo{bar}{zap}") == ClusterSlot.of("bar"))
    }

    @Test func seedListsShareOneCredentialAndScheme() throws {
        let seeds = try RedisEndpoint.clusterSeeds("rediss://app:s%40cret@10.0.0.1:6379, 10.0.0.2:6380")
        #expect(seeds.count == 2)
        #expect(seeds.allSatisfy { $0.tls && $0.username == "app" && $0.password == "s@cret" })
        #expect(seeds.map(\.address) == ["10.0.0.1:6379", "10.0.0.2:6380"])
        let plain = try RedisEndpoint.clusterSeeds("a:7000,b:7001")
        #expect(plain.allSatisfy { !$0.tls && $0.password == nil })
        for bad in ["", "a:7000,,b:7001", "a:7000,", "redis://a:7000/3", "a:notaport", "a:7000,x@b:7001"] {
            #expect(throws: (any Error).self, "\(bad)") { try SecurityConfig.redisTarget(url: nil, clusterNodes: bad) }
        }
        #expect(throws: ConfigError.self) { try SecurityConfig.redisTarget(url: "redis://a", clusterNodes: "a:1") }
        #expect(
            try SecurityConfig.redisTarget(url: "rediss://u:p@h:1/2", clusterNodes: nil)
                == .server(try RedisEndpoint(url: "rediss://u:p@h:1/2")))
        // A bad URL's error does not echo the password.
        do {
            _ = try SecurityConfig.redisTarget(url: "http://u:hunter2@h:1", clusterNodes: nil)
            Issue.record("accepted http://")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test func slotMapsTellFailoversFromResharding() throws {
        let a = ClusterNode(host: "10.0.0.1", port: 1)
        let b = ClusterNode(host: "10.0.0.2", port: 1)
        let ra = ClusterNode(host: "10.0.0.3", port: 1)
        let before = ClusterSlotMap(ranges: [
            .init(first: 0, last: 8191, master: a, replicas: [ra]),
            .init(first: 8192, last: 16383, master: b, replicas: []),
        ])
        #expect(before.master(for: 0) == a && before.master(for: 16383) == b && before.uncoveredSlots == 0)
        let failedOver = ClusterSlotMap(ranges: [
            .init(first: 0, last: 8191, master: ra, replicas: []),
            .init(first: 8192, last: 16383, master: b, replicas: []),
        ])
        #expect(before.failovers(to: failedOver).map { "\($0.from)>\($0.to)" } == ["10.0.0.1:1>10.0.0.3:1"])
        let resharded = ClusterSlotMap(ranges: [
            .init(first: 0, last: 99, master: b, replicas: []),
            .init(first: 100, last: 8191, master: a, replicas: [ra]),
            .init(first: 8192, last: 16383, master: b, replicas: []),
        ])
        #expect(before.failovers(to: resharded).isEmpty)
        var moved = before
        moved.assign(slot: 5, to: b)
        #expect(moved.master(for: 5) == b && moved.master(for: 6) == a)
        let partial = ClusterSlotMap(ranges: [.init(first: 0, last: 99, master: a, replicas: [])])
        #expect(partial.uncoveredSlots == 16384 - 100)
        // The reply shape of CLUSTER SLOTS, with an empty host meaning the node asked.
        let reply = RESPValue.array([
            .array([
                .integer(0), .integer(16383),
                .array([.bulkString(Array("".utf8)), .integer(7000), .bulkString(Array("id".utf8))]),
            ])
        ])
        let parsed = try ClusterSlotMap.parse(reply, asked: ClusterNode(host: "127.0.0.1", port: 7000))
        #expect(parsed.master(for: 42) == ClusterNode(host: "127.0.0.1", port: 7000))
        #expect(throws: RedisError.self) { try ClusterSlotMap.parse(.array([.integer(1)]), asked: a) }
    }
}

/// A key whose slot one of `ranges` holds.
func clusterKey(_ prefix: String, in ranges: [ClosedRange<Int>]) -> String {
    var i = 0
    while true {
        let key = "\(prefix)-\(i)"
        if ranges.contains(where: { $0.contains(ClusterSlot.of(key)) }) { return key }
        i += 1
    }
}

/// Requests and cluster commands sent in a loop until stopped, with what came back counted.
final class ClusterLoad: Sendable {
    struct Counts: Sendable {
        var requests = 0
        var statuses: [UInt: Int] = [:]
        var thrown = 0
        var commands = 0
        var commandsLocal = 0
        var wrongValues = 0
    }
    let counts = Mutex(Counts())
    let running = Atomic<Bool>(true)

    /// Four workers that read `keys` (each key's value is the key) through the gate, one after
    /// another, and send `request` after each read when there is one (its status is counted).
    func start(
        gate: RedisGate, keys: [String], request: (@Sendable () async throws -> UInt)? = nil
    ) -> [Task<Void, Never>] {
        (0..<4).map { worker in
            Task {
                var i = worker
                while running.load(ordering: .relaxed) {
                    i += 4
                    let key = keys[i % keys.count]
                    let value = await gate.run { try await $0.send(["GET", key]) }
                    counts.withLock {
                        $0.commands += 1
                        if value == nil {
                            $0.commandsLocal += 1
                        } else if value?.string != key {
                            $0.wrongValues += 1
                        }
                    }
                    guard let request else { continue }
                    do {
                        let status = try await request()
                        counts.withLock {
                            $0.requests += 1
                            $0.statuses[status, default: 0] += 1
                        }
                    } catch {
                        counts.withLock { $0.thrown += 1 }
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
        }
    }

    func finish(_ workers: [Task<Void, Never>]) async {
        running.store(false, ordering: .relaxed)
        for worker in workers { await worker.value }
    }
    var snapshot: Counts { counts.withLock { $0 } }
    var fiveHundreds: Int { snapshot.statuses.filter { $0.key >= 500 }.values.reduce(0, +) }
}

@Suite("Redis Cluster: shared state, failover, resharding, broken nodes", .serialized)
struct RedisClusterTests {
    static func clusterEnv(_ cluster: RedisClusterTestServer, _ extra: [String: String] = [:]) -> [String: String] {
        var env = securityEnv(["REDIS_CLUSTER_NODES": cluster.seeds, "FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "1000000"])
        if let tls = cluster.tls { env["REDIS_TLS_CA_FILE"] = tls.ca }
        for (key, value) in extra { env[key] = value }
        return env
    }

    @Test func twoInstancesShareLimitsAndCachedResultsThroughTheCluster() async throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        let env = Self.clusterEnv(cluster, ["FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE": "5"])
        try await withFaceSocial(env) { first in
            try await withFaceSocial(env) { second in try await expectOneIPLimit(of: 5, across: first, second) }
        }
        let image = try testImage("obama.jpg")
        try await withFaceSocial(Self.clusterEnv(cluster)) { first in
            try await withFaceSocial(Self.clusterEnv(cluster)) { second in
                // A result computed by one instance is a hit on the other.
                // (Anonymously: development allows it, and each instance here has its own JWT secret.)
                for app in [first, second] {
                    let headers: HTTPHeaders = ["Content-Type": "image/jpeg"]
                    try await app.testing().test(.POST, "/v1/detect", headers: headers, body: ByteBuffer(bytes: image))
                    {
                        res in #expect(res.status == .ok, "\(res.body.string.prefix(200))")
                    }
                }
                #expect(second.security?.cache.statistics.hits == 1)
                #expect(first.security?.cache.statistics.misses == 1)
                try await first.testing().test(.GET, "/health/ready") { res in
                    #expect(body(res)[path: "data.checks.cache.status"] as? String == "ok")
                }
                // The keys these two requests wrote (the cached result, the rate-limit counter) are
                // in the cluster. Counted now, while the counter's one-minute window is open: read
                // after the instances stop, on a busy machine, the counter had expired ([0, 1, 0]).
                let stored = try cluster.masters().map {
                    Int(try cluster.cli(["DBSIZE"], port: $0.port).trimmingCharacters(in: .whitespacesAndNewlines))
                        ?? 0
                }
                #expect(stored.reduce(0, +) >= 2, "\(stored)")
            }
        }
    }

    /// One master SIGKILLed, then another SIGSTOPped, under load: no request fails, only the lost
    /// master's slots go local, and the cluster is used again once each replica takes over.
    @Test(.timeLimit(.minutes(5))) func mastersLostUnderLoadFailNoRequest() async throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        try await withFaceSocial(Self.clusterEnv(cluster)) { app in
            let gate = try #require(app.security?.redis)
            let masters = try cluster.masters()
            #expect(masters.count == 3)
            let load = ClusterLoad()
            let keys = (0..<300).map { "fs:test:load:\($0)" }
            for key in keys { #expect(await gate.run { try await $0.send(["SET", key, key]) } != nil) }
            let workers = load.start(gate: gate, keys: keys) {
                var status: UInt = 0
                try await app.testing().test(.GET, "/v1/auth/me") { res in status = res.status.code }
                return status
            }
            var figures: [String] = []
            do {
                for (index, victim) in masters.prefix(2).enumerated() {
                    let lostKey = clusterKey("fs:test:lost\(index)", in: victim.slots)
                    let keptKey = clusterKey("fs:test:kept\(index)", in: masters[2].slots)
                    let started = ContinuousClock.now
                    if index == 0 { cluster.kill(victim.port) } else { cluster.pause(victim.port) }
                    var keptServed = 0
                    var lostLocal = 0
                    var recovered: Duration?
                    while ContinuousClock.now - started < .seconds(90) {
                        if await gate.run({ try await $0.send(["SET", keptKey, "1"]) }) != nil { keptServed += 1 }
                        if await gate.run({ try await $0.send(["SET", lostKey, "1"]) }) != nil {
                            if lostLocal > 0 {
                                recovered = ContinuousClock.now - started
                                break
                            }
                        } else {
                            lostLocal += 1
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    let seconds = recovered.map {
                        Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
                    }
                    figures.append(
                        "\(index == 0 ? "SIGKILL" : "SIGSTOP") master :\(victim.port): its slots local \(lostLocal) times, "
                            + "other master served \(keptServed) times, cluster used again after \(seconds.map { String(format: "%.1f", $0) } ?? "never") s"
                    )
                    #expect(recovered != nil, "the cluster was not used again for the lost master's slots")
                    #expect(lostLocal > 0, "the lost master's slots never went local")
                    #expect(keptServed > 0, "the other masters' slots went local too")
                    try cluster.waitUntilHealthy()
                }
            } catch {
                await load.finish(workers)
                throw error
            }
            await load.finish(workers)
            cluster.resume(masters[1].port)
            let counts = load.snapshot
            let redisCounts = try #require(gate.metrics).counts
            print(
                "Redis Cluster failover under load: \(figures.joined(separator: "; ")); \(counts.requests) requests, "
                    + "statuses \(counts.statuses), \(counts.thrown) thrown, \(counts.commands) reads (\(counts.commandsLocal) local, "
                    + "\(counts.wrongValues) wrong), failovers seen \(redisCounts.failovers)")
            #expect(counts.requests > 50)
            #expect(counts.thrown == 0)
            #expect(load.fiveHundreds == 0, "\(counts.statuses)")
            #expect(counts.wrongValues == 0)
            #expect(redisCounts.failovers >= 2)
            // Every key written before is still there: the replicas had them.
            for key in keys { #expect(await gate.run { try await $0.send(["GET", key]) }?.string == key) }
            try await app.testing().test(.GET, "/health/ready") { res in
                #expect(body(res)[path: "data.checks.cache.status"] as? String == "ok", "\(res.body.string)")
            }
        }
    }

    /// Slots resharded from one master to another while keys in them are read and written: every
    /// MOVED and ASK is followed, no command fails, nothing is lost.
    @Test(.timeLimit(.minutes(5))) func reshardingUnderLoadFollowsEveryRedirection() async throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        try await withFaceSocial(Self.clusterEnv(cluster)) { app in
            let gate = try #require(app.security?.redis)
            let metrics = try #require(gate.metrics)
            let masters = try cluster.masters()
            let source = masters[0]
            let target = masters[1]
            // redis-cli moves the source's lowest slots first; keys in them are the ones that travel.
            let moving = [source.slots[0].lowerBound...(source.slots[0].lowerBound + 199)]
            var keys: [String] = []
            var i = 0
            while keys.count < 2000 {
                let key = "fs:test:reshard:\(i)"
                if moving.contains(where: { $0.contains(ClusterSlot.of(key)) }) { keys.append(key) }
                i += 1
            }
            for key in keys { #expect(await gate.run { try await $0.send(["SET", key, key]) } != nil) }
            let load = ClusterLoad()
            let workers = load.start(gate: gate, keys: keys)
            let started = ContinuousClock.now
            let output = try await cluster.cliInBackground([
                "--cluster", "reshard", "127.0.0.1:\(source.port)", "--cluster-from", source.id, "--cluster-to",
                target.id,
                "--cluster-slots", "200", "--cluster-yes", "--cluster-pipeline", "20",
            ])
            let took = ContinuousClock.now - started
            try await Task.sleep(for: .seconds(1))
            await load.finish(workers)
            let counts = load.snapshot
            let redirections = metrics.counts
            print(
                "Redis Cluster reshard under load: 200 slots, \(keys.count) keys, in \(took); \(counts.commands) reads, "
                    + "\(counts.commandsLocal) failed, \(counts.wrongValues) wrong; MOVED \(redirections.moved), ASK \(redirections.ask)"
            )
            #expect(!output.contains("ERR"), "\(output.suffix(500))")
            #expect(
                try cluster.masters().first { $0.id == target.id }?.slots.contains { $0.contains(moving[0].lowerBound) }
                    == true)
            #expect(counts.commands > 100)
            #expect(counts.commandsLocal == 0)
            #expect(counts.wrongValues == 0)
            #expect(redirections.moved > 0)
            for key in keys { #expect(await gate.run { try await $0.send(["GET", key]) }?.string == key) }
        }
    }

    /// A node that answers garbage, or closes mid-reply, is a lost node: the command degrades, the
    /// map comes from the other seeds, and the real cluster is used from then on.
    @Test func brokenNodesAreTreatedAsLost() async throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        for mode in [FakeRedisNode.Mode.garbage, .closeMidReply] {
            let fake = try await FakeRedisNode.start(mode: mode)
            let seeds = try RedisEndpoint.clusterSeeds("127.0.0.1:\(fake.port),127.0.0.1:\(cluster.ports[0])")
            let metrics = RedisMetrics()
            let client = RedisClusterClient(
                seeds: seeds, tls: nil, group: MultiThreadedEventLoopGroup.singleton, metrics: metrics)
            let gate = RedisGate(client: client, metrics: metrics)
            // The fake answered the first CLUSTER SLOTS with itself as the only master.
            #expect(await gate.run { try await $0.send(["SET", "fs:test:broken", "1"]) } == nil, "\(mode)")
            #expect(await client.slotMap?.masters == [ClusterNode(host: "127.0.0.1", port: fake.port)])
            var served = false
            for _ in 0..<50 where !served {
                try await Task.sleep(for: .milliseconds(100))
                served = await gate.run { try await $0.send(["SET", "fs:test:broken", "1"]) } != nil
            }
            #expect(served, "\(mode): the real cluster was not used after the broken node")
            #expect(await client.slotMap?.masters.contains { $0.port == fake.port } == false)
            #expect(metrics.counts.errors >= 1)
            await client.shutdown()
            try await fake.stop()
        }
    }

    /// No seed answers (nothing listens at either address): every command degrades at once, and
    /// the callers share discoveries, at most one per second, instead of each trying every seed.
    @Test func anUnreachableClusterIsNotAskedOnEveryCommand() async throws {
        let ports = [try RedisTestServer.freePort(), try RedisTestServer.freePort()]
        let seeds = try RedisEndpoint.clusterSeeds(ports.map { "127.0.0.1:\($0)" }.joined(separator: ","))
        let metrics = RedisMetrics()
        let client = RedisClusterClient(
            seeds: seeds, tls: nil, group: MultiThreadedEventLoopGroup.singleton, metrics: metrics)
        let gate = RedisGate(client: client, metrics: metrics)
        let started = ContinuousClock.now
        let answers = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<40 { group.addTask { await gate.run { try await $0.send(["GET", "fs:test:\(i)"]) } == nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        let seconds = Int((ContinuousClock.now - started).components.seconds) + 1
        #expect(answers.count == 40 && answers.allSatisfy { $0 }, "every command degrades")
        // Each discovery asks both seeds once; one discovery per started second at most.
        #expect(metrics.counts.commands <= 2 * (seconds + 1), "\(metrics.counts.commands) attempts in \(seconds) s")
        #expect(await gate.probe() != nil)
        await client.shutdown()
    }

    /// Credentials and TLS in the same URL form for one server and for a cluster.
    @Test func credentialsAndTLSWorkForAServerAndForACluster() async throws {
        let cluster = try RedisClusterTestServer(password: "cluster-secret", tls: true)
        defer { cluster.stop() }
        let tls = try #require(cluster.tls)
        try await withFaceSocial(Self.clusterEnv(cluster)) { app in
            let gate = try #require(app.security?.redis)
            #expect(gate.client.isCluster)
            for i in 0..<50 { #expect(await gate.run { try await $0.send(["SET", "fs:test:tls:\(i)", "v"]) } != nil) }
            #expect(await gate.probe() == nil)
        }
        // One TLS server with an ACL user (not the default user).
        let port = try RedisTestServer.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--save", "", "--tls-cert-file",
            tls.certificate, "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca, "--tls-auth-clients", "no",
            "--user", "default", "off", "--user", "app", "on", ">app-secret", "~*", "&*", "+@all",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            var status: Int32 = 0
            for _ in 0..<100 where waitpid(process.processIdentifier, &status, WNOHANG) == 0 { usleep(20_000) }
        }
        for _ in 0..<200 where !RedisTestServer.canConnect(port) { usleep(20_000) }
        let target = try #require(
            try SecurityConfig.redisTarget(url: "rediss://app:app-secret@127.0.0.1:\(port)", clusterNodes: nil))
        let client = try target.makeClient(
            caFile: tls.ca, group: MultiThreadedEventLoopGroup.singleton, metrics: nil, logger: Logger(label: "test"))
        #expect(try await client.send(["SET", "k", "v"]).string == "OK")
        #expect(try await client.send(["GET", "k"]).string == "v")
        // The wrong password, and a server whose CA is not trusted, are refused.
        let wrong = try SecurityConfig.redisTarget(url: "rediss://app:nope@127.0.0.1:\(port)", clusterNodes: nil)!
            .makeClient(
                caFile: tls.ca, group: MultiThreadedEventLoopGroup.singleton, metrics: nil,
                logger: Logger(label: "test"))
        await #expect(throws: (any Error).self) { try await wrong.send(["GET", "k"]) }
        let untrusted = try target.makeClient(
            caFile: nil, group: MultiThreadedEventLoopGroup.singleton, metrics: nil, logger: Logger(label: "test"))
        await #expect(throws: (any Error).self) { try await untrusted.send(["GET", "k"]) }
        await client.shutdown()
    }
}

extension RedisClusterTestServer {
    /// redis-cli on a thread of its own, so a long reshard does not hold one of the few
    /// cooperative threads the load runs on.
    func cliInBackground(_ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do { continuation.resume(returning: try self.cli(arguments)) } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// A TCP server that claims every slot in its first `CLUSTER SLOTS` answer and then answers
/// garbage, or starts a reply and closes: a broken cluster node.
final class FakeRedisNode: Sendable {
    enum Mode { case garbage, closeMidReply }
    let channel: any Channel
    let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    static func start(mode: Mode) async throws -> FakeRedisNode {
        let servedMap = Once()
        let portBox = Mutex<Int>(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(mode: mode, servedMap: servedMap, port: portBox.withLock { $0 }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        portBox.withLock { $0 = channel.localAddress?.port ?? 0 }
        return FakeRedisNode(channel: channel)
    }

    func stop() async throws { try await channel.close() }

    /// True for the first caller only.
    final class Once: Sendable {
        private let taken = Mutex(false)
        func claim() -> Bool {
            taken.withLock { was in
                defer { was = true }
                return !was
            }
        }
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        let servedMap: Once
        let port: Int
        init(mode: Mode, servedMap: Once, port: Int) {
            self.mode = mode
            self.servedMap = servedMap
            self.port = port
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = unwrapInboundIn(data).getString(at: 0, length: unwrapInboundIn(data).readableBytes) ?? ""
            var reply = ByteBuffer()
            if text.uppercased().contains("SLOTS"), servedMap.claim() {
                let id = String(repeating: "f", count: 40)
                reply.writeString("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:\(port)\r\n$40\r\n\(id)\r\n")
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                return
            }
            switch mode {
            case .garbage:
                reply.writeString("%garbage that is not RESP\r\n")
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            case .closeMidReply:
                reply.writeString("$64\r\nhalf a rep")
                context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}
