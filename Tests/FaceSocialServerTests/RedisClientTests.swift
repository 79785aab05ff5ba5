import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import FaceSocialServer

@Suite("RESP client against a real redis-server")
struct RedisClientTests {
    @Test func decoderWaitsForCompleteReplies() throws {
        var buffer = ByteBuffer(string: "*2\r\n$3\r\nfoo\r\n:4")
        var copy = buffer
        #expect(try RESPDecoder.parse(&copy) == nil)
        buffer.writeString("2\r\n")
        #expect(try RESPDecoder.parse(&buffer) == .array([.bulkString(Array("foo".utf8)), .integer(42)]))
        var null = ByteBuffer(string: "$-1\r\n")
        #expect(try RESPDecoder.parse(&null) == .bulkString(nil))
        var bad = ByteBuffer(string: "?what\r\n")
        #expect(throws: RESPParseError.self) { try RESPDecoder.parse(&bad) }
    }

    @Test func urls() throws {
        let endpoint = try RedisEndpoint(url: "redis://user:p%40ss@10.0.0.5:6380/2")
        #expect(endpoint.host == "10.0.0.5" && endpoint.port == 6380 && endpoint.database == 2)
        #expect(endpoint.username == "user" && endpoint.password == "p@ss")
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "http://localhost") }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis://localhost/abc") }
    }

    @Test func commandsScriptsAndAuth() async throws {
        let server = try RedisTestServer(password: "s3cret")
        let client = try RedisClient(url: server.url, group: MultiThreadedEventLoopGroup.singleton)
        #expect(try await client.send(["SET", "k", "v", "PX", "10000"]).string == "OK")
        #expect(try await client.send(["GET", "k"]).string == "v")
        #expect(try await client.send(["GET", "missing"]).isNull)
        let reply = try await client.eval(
            "return redis.call('INCRBY', KEYS[1], ARGV[1])", keys: ["counter"], arguments: ["5"])
        #expect(reply.integer == 5)
        await #expect(throws: RedisError.self) { try await client.send(["NOSUCHCOMMAND"]) }
        #expect(await client.isHealthy, "a server error reply is not an outage")
        let wrong = try RedisClient(
            url: "redis://:nope@127.0.0.1:\(server.port)", group: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: RedisError.self) { try await wrong.send(["PING"]) }
        await client.shutdown()
    }

    @Test func concurrentCommandsShareThePool() async throws {
        let server = try RedisTestServer()
        let client = try RedisClient(url: server.url, group: MultiThreadedEventLoopGroup.singleton, maxConnections: 4)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { _ = try await client.send(["INCR", "hits"]) } }
            try await group.waitForAll()
        }
        #expect(try await client.send(["GET", "hits"]).integer == 200)
        await client.shutdown()
    }

    /// "Fast" means the outage is seen, not waited out: both timeouts are far longer than the test
    /// may take, so a command that fails by timing out fails the error check (a wall-clock bound
    /// would measure the machine's load instead).
    @Test func failsOnTheOutageNotOnATimeoutAndRecoversAfterRestart() async throws {
        let server = try RedisTestServer()
        let client = try RedisClient(
            url: server.url, group: MultiThreadedEventLoopGroup.singleton, connectTimeout: .seconds(60),
            commandTimeout: .seconds(60))
        #expect(await client.ping())
        server.stop()
        let error = await #expect(throws: (any Error).self) { try await client.send(["PING"]) }
        #expect(!Self.isTimeout(error), "failed by timing out: \(String(describing: error))")
        #expect(await client.isHealthy == false)
        try server.start()
        #expect(await client.ping())
        #expect(await client.isHealthy)
        await client.shutdown()
    }

    /// A command written after its connection has finished closing fails at once: the write never
    /// reaches the handler that fails pending commands, so only the write's own failure can.
    @Test func aCommandOnAClosedConnectionFailsAtOnce() async throws {
        let server = try RedisTestServer()
        let connection = try await RedisConnection.connect(
            to: RedisEndpoint(url: server.url), tls: nil, group: MultiThreadedEventLoopGroup.singleton,
            connectTimeout: .seconds(60), commandTimeout: .seconds(60))
        #expect(try await connection.send(["PING"]).string == "PONG")
        connection.close()
        try await connection.channel.closeFuture.get()
        let error = await #expect(throws: (any Error).self) { try await connection.send(["PING"]) }
        #expect(!Self.isTimeout(error), "failed by timing out: \(String(describing: error))")
    }

    static func isTimeout(_ error: (any Error)?) -> Bool {
        (error as? RedisError) == .timeout || (error as? ChannelError) == .connectTimeout(.seconds(60))
    }
}
