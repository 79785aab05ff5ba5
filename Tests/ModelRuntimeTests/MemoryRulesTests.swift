import Testing

@testable import ModelRuntime

/// Every rule of docs/memory.md's placement, footprint, eviction and idle sections, one table row
/// each, on plain values: no engine, no model file.
@Suite struct MemoryRulesTests {
    typealias Priority = ModelManifest.Priority
    static let t0 = ContinuousClock.now

    static func resident(
        _ id: String, _ priority: Priority, _ megabytes: Int, idle: Bool = true, at seconds: Int = 0,
        pinned: Bool = false
    ) -> MemoryRules.Resident {
        .init(
            id: id, priority: priority, bytes: megabytes << 20, idle: idle, lastActive: t0 + .seconds(seconds),
            pinned: pinned)
    }

    struct PlacementCase: Sendable, CustomTestStringConvertible {
        var rule: String
        var priority: Priority
        var configured: [String]?
        var devices: [String]
        var pools: [String: [String]]
        var expected: [String]
        var testDescription: String { rule }
    }

    @Test(arguments: [
        PlacementCase(
            rule: "a configured order wins", priority: .high, configured: ["GPU:high", "CPU"], devices: ["CPU"],
            pools: ["CPU": ["high"]], expected: ["GPU:high", "CPU"]),
        PlacementCase(
            rule: "high: its class pool, then flexible, then the default pool", priority: .high, configured: nil,
            devices: ["CPU"], pools: ["CPU": ["critical", "high", "flexible"]],
            expected: ["CPU:high", "CPU:flexible", "CPU"]),
        PlacementCase(
            rule: "critical goes to the critical pool first", priority: .critical, configured: nil, devices: ["CPU"],
            pools: ["CPU": ["critical", "high", "flexible"]], expected: ["CPU:critical", "CPU:flexible", "CPU"]),
        PlacementCase(
            rule: "standard and low share flexible, listed once", priority: .low, configured: nil, devices: ["CPU"],
            pools: ["CPU": ["flexible"]], expected: ["CPU:flexible", "CPU"]),
        PlacementCase(
            rule: "pools a device does not have are skipped", priority: .high, configured: nil, devices: ["CPU"],
            pools: [:], expected: ["CPU"]),
        PlacementCase(
            rule: "devices in order, each with its own pools", priority: .high, configured: nil,
            devices: ["GPU", "CPU"], pools: ["GPU": ["high"]], expected: ["GPU:high", "GPU", "CPU"]),
    ])
    func placement(_ row: PlacementCase) {
        let targets = MemoryRules.placement(
            priority: row.priority, configured: row.configured?.compactMap(PlacementTarget.init),
            devices: row.devices, pools: row.pools)
        #expect(targets.map(\.description) == row.expected, "\(row.rule)")
    }

    @Test func aLoadIsChargedWhatItMeasuredLastElseTheEstimate() {
        #expect(MemoryRules.prior(learned: nil, estimatedMB: 24) == 24 << 20)
        #expect(MemoryRules.prior(learned: 5_000_000, estimatedMB: 24) == 5_000_000)
    }

    @Test func aPoolCountsResidentsAndReservations() {
        let pool = MemoryRules.PoolLedger(budget: 100, resident: ["a": 30, "b": 20], reserved: ["c": 10])
        #expect(pool.used == 60)
        #expect(pool.free == 40)
        #expect(MemoryRules.PoolLedger(budget: 10, resident: ["a": 30]).free == -20)
    }

    struct EvictionCase: Sendable, CustomTestStringConvertible {
        var rule: String
        var needMB: Int
        var freeMB: Int
        var residents: [MemoryRules.Resident]
        var requester: Priority
        /// nil: the load cannot be made to fit, and nothing is evicted.
        var expected: [String]?
        var testDescription: String { rule }
    }

    @Test(arguments: [
        EvictionCase(
            rule: "nothing is evicted when the load fits", needMB: 10, freeMB: 10,
            residents: [resident("a", .low, 50)], requester: .high, expected: []),
        EvictionCase(
            rule: "the lowest class goes first", needMB: 30, freeMB: 0,
            residents: [resident("std", .standard, 40, at: 0), resident("low", .low, 40, at: 9)], requester: .high,
            expected: ["low"]),
        EvictionCase(
            rule: "least recently used first within a class", needMB: 30, freeMB: 0,
            residents: [resident("recent", .low, 40, at: 9), resident("old", .low, 40, at: 1)], requester: .high,
            expected: ["old"]),
        EvictionCase(
            rule: "only as many as needed", needMB: 50, freeMB: 10,
            residents: [
                resident("a", .low, 30, at: 1), resident("b", .low, 30, at: 2), resident("c", .low, 30, at: 3),
            ],
            requester: .high, expected: ["a", "b"]),
        EvictionCase(
            rule: "equal priority may be evicted (models of a class take turns)", needMB: 30, freeMB: 0,
            residents: [resident("peer", .standard, 40)], requester: .standard, expected: ["peer"]),
        EvictionCase(
            rule: "a higher class is never evicted", needMB: 30, freeMB: 0,
            residents: [resident("high", .high, 40)], requester: .standard, expected: nil),
        EvictionCase(
            rule: "critical models are never evicted", needMB: 30, freeMB: 0,
            residents: [resident("detector", .critical, 40)], requester: .critical, expected: nil),
        EvictionCase(
            rule: "a model with work running or queued is never evicted", needMB: 30, freeMB: 0,
            residents: [resident("busy", .low, 40, idle: false)], requester: .high, expected: nil),
        EvictionCase(
            rule: "nothing is evicted unless that frees enough", needMB: 100, freeMB: 10,
            residents: [resident("a", .low, 30), resident("b", .low, 30)], requester: .high, expected: nil),
        EvictionCase(
            rule: "busy and higher models are passed over for ones that may go", needMB: 30, freeMB: 0,
            residents: [
                resident("busy", .low, 40, idle: false, at: 0), resident("high", .high, 40, at: 0),
                resident("idle", .standard, 40, at: 5),
            ], requester: .standard, expected: ["idle"]),
    ])
    func eviction(_ row: EvictionCase) {
        let chosen = MemoryRules.evictions(
            need: row.needMB << 20, free: row.freeMB << 20, residents: row.residents, for: row.requester)
        #expect(chosen == row.expected, "\(row.rule)")
    }

    struct IdleCase: Sendable, CustomTestStringConvertible {
        var rule: String
        var resident: MemoryRules.Resident
        var nowSeconds: Int
        var expired: Bool
        var testDescription: String { rule }
    }

    static let ttl: [Priority: Duration] = [.standard: .seconds(900), .low: .seconds(300)]

    @Test(arguments: [
        IdleCase(
            rule: "idle past its class's TTL: unloaded", resident: resident("a", .low, 1), nowSeconds: 301,
            expired: true),
        IdleCase(
            rule: "exactly at the TTL: unloaded", resident: resident("a", .low, 1), nowSeconds: 300, expired: true),
        IdleCase(rule: "within the TTL: kept", resident: resident("a", .low, 1), nowSeconds: 299, expired: false),
        IdleCase(
            rule: "each class its own TTL", resident: resident("a", .standard, 1), nowSeconds: 301, expired: false),
        IdleCase(
            rule: "a class without a TTL stays", resident: resident("a", .high, 1), nowSeconds: 99_999, expired: false),
        IdleCase(
            rule: "critical never", resident: resident("a", .critical, 1), nowSeconds: 99_999, expired: false),
        IdleCase(
            rule: "preloaded (pinned) never", resident: resident("a", .low, 1, pinned: true), nowSeconds: 99_999,
            expired: false),
        IdleCase(
            rule: "busy never", resident: resident("a", .low, 1, idle: false), nowSeconds: 99_999, expired: false),
    ])
    func idleUnload(_ row: IdleCase) {
        let expired = MemoryRules.expired([row.resident], ttl: Self.ttl, now: Self.t0 + .seconds(row.nowSeconds))
        #expect(expired == (row.expired ? [row.resident.id] : []), "\(row.rule)")
    }
}
