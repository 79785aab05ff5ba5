/// The memory manager's rules (docs/memory.md) as plain functions over plain values, so each rule
/// is tested against a table in milliseconds with no engine and no model file. `ModelManager`
/// keeps the records, runs loads and measurements, and asks these what to do.
public enum MemoryRules {
    /// What one pool holds: models resident in it and reservations for loads in progress.
    public struct PoolLedger: Sendable, Equatable {
        public var budget: Int
        public var resident: [String: Int] = [:]
        public var reserved: [String: Int] = [:]

        public init(budget: Int, resident: [String: Int] = [:], reserved: [String: Int] = [:]) {
            self.budget = budget
            self.resident = resident
            self.reserved = reserved
        }

        public var used: Int { resident.values.reduce(0, +) + reserved.values.reduce(0, +) }
        public var free: Int { budget - used }
    }

    /// A loaded model as eviction and idle unloading see it.
    public struct Resident: Sendable, Equatable {
        public var id: String
        public var priority: ModelManifest.Priority
        public var bytes: Int
        /// Nothing running or queued and no load pending: only such a model may be unloaded.
        public var idle: Bool
        public var lastActive: ContinuousClock.Instant
        /// Critical and preloaded models: never unloaded by an idle TTL.
        public var pinned: Bool

        public init(
            id: String, priority: ModelManifest.Priority, bytes: Int, idle: Bool,
            lastActive: ContinuousClock.Instant, pinned: Bool = false
        ) {
            self.id = id
            self.priority = priority
            self.bytes = bytes
            self.idle = idle
            self.lastActive = lastActive
            self.pinned = pinned
        }
    }

    /// The pool a class prefers where the device has it (the original design's zones).
    public static func zone(for priority: ModelManifest.Priority) -> String {
        switch priority {
        case .critical: "critical"
        case .high: "high"
        case .standard, .low: "flexible"
        }
    }

    /// A model's placement order: the configured one, else on each placeable device in order the
    /// pool of its class, then `flexible`, then the device's default pool (those the device has).
    public static func placement(
        priority: ModelManifest.Priority, configured: [PlacementTarget]?, devices: [String],
        pools: [String: [String]]
    ) -> [PlacementTarget] {
        if let configured { return configured }
        var targets: [PlacementTarget] = []
        for device in devices {
            let named = Set(pools[device] ?? [])
            for pool in [zone(for: priority), "flexible", PlacementTarget.defaultPool]
            where pool == PlacementTarget.defaultPool || named.contains(pool) {
                let target = PlacementTarget(device: device, pool: pool)
                if !targets.contains(target) { targets.append(target) }
            }
        }
        return targets
    }

    /// What a load is charged before it is measured: the footprint its last load measured, else
    /// the manifest's estimate.
    public static func prior(learned: Int?, estimatedMB: Int) -> Int {
        learned ?? estimatedMB * 1_048_576
    }

    /// The models to evict so `need` bytes fit in a pool with `free` bytes, for a model of
    /// `priority`: idle ones of lower or equal priority (never critical), lowest class first and
    /// least recently used first within a class, only as many as needed. Nil when even all of them
    /// would not free enough, and then nothing should be evicted.
    public static func evictions(
        need: Int, free: Int, residents: [Resident], for priority: ModelManifest.Priority
    ) -> [String]? {
        if free >= need { return [] }
        let candidates = residents.filter { $0.idle && $0.priority != .critical && $0.priority <= priority }
            .sorted {
                if $0.priority != $1.priority { return $0.priority < $1.priority }
                if $0.lastActive != $1.lastActive { return $0.lastActive < $1.lastActive }
                return $0.id < $1.id
            }
        var reclaimable = free
        var chosen: [String] = []
        for candidate in candidates where reclaimable < need {
            chosen.append(candidate.id)
            reclaimable += candidate.bytes
        }
        return reclaimable >= need ? chosen : nil
    }

    /// The models idle past their class's TTL at `now` (classes without a TTL stay loaded; critical
    /// and pinned models always do), in id order.
    public static func expired(
        _ residents: [Resident], ttl: [ModelManifest.Priority: Duration], now: ContinuousClock.Instant
    ) -> [String] {
        residents.filter { resident in
            guard resident.idle, resident.priority != .critical, !resident.pinned,
                let limit = ttl[resident.priority]
            else { return false }
            return resident.lastActive + limit <= now
        }.map(\.id).sorted()
    }
}
