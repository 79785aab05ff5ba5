import Foundation

/// Where a model may live: a device and one of its pools (`CPU:high`), or a device's default pool
/// (`CPU`).
public struct PlacementTarget: Sendable, Hashable, CustomStringConvertible {
    public var device: String
    public var pool: String

    public static let defaultPool = "default"

    public init(device: String, pool: String = PlacementTarget.defaultPool) {
        self.device = device
        self.pool = pool
    }

    /// Parses `DEVICE` or `DEVICE:pool`.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else { return nil }
        device = String(parts[0])
        pool = parts.count == 2 ? String(parts[1]) : Self.defaultPool
        guard !pool.isEmpty else { return nil }
    }

    public var description: String { pool == Self.defaultPool ? device : "\(device):\(pool)" }
}

/// How the memory manager places, evicts, admits and batches: read from the environment.
public struct MemoryPolicy: Sendable, Equatable {
    /// A budget: bytes, or a fraction of what it divides (a device's total, or a device's budget
    /// for a pool).
    public enum Amount: Sendable, Equatable {
        case bytes(Int)
        case fraction(Double)

        public func resolve(of whole: Int) -> Int {
            switch self {
            case .bytes(let bytes): bytes
            case .fraction(let fraction): Int(Double(whole) * fraction)
            }
        }
    }

    public struct Pool: Sendable, Equatable {
        public var name: String
        public var amount: Amount
    }

    /// Devices in order of preference; nil picks every OpenVINO accelerator, then the CPU.
    public var devices: [String]?
    public var budgets: [String: Amount] = [:]
    public var pools: [String: [Pool]] = [:]
    /// Per-model placement order; models not listed follow the default order from their priority.
    public var placement: [String: [PlacementTarget]] = [:]
    /// Idle time after which a model of a class is unloaded; classes not listed stay loaded.
    /// Critical models are never unloaded.
    public var idleTTL: [ModelManifest.Priority: Duration] = [:]
    /// Charge each model its measured footprint (true), or its manifest estimate (false: accounting
    /// that does not depend on what else the process allocates while a model loads).
    public var measureFootprints = true
    public var queueLimit = 32
    public var queueTimeout: Duration = .seconds(10)
    // Off by default: on the 2-core CPU it measured slower (docs/benchmarks.md).
    public var maxBatch = 1
    public var batchWait: Duration = .milliseconds(3)

    public static let defaultCPUFraction = 0.5
    public static let defaultAcceleratorFraction = 0.9

    public init() {}

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var variable: String
        public var reason: String
        public var description: String { "\(variable): \(reason)" }
    }

    /// Reads the FACESOCIAL_* memory variables (see docs/memory.md for the formats).
    public static func parse(_ env: [String: String]) throws(Invalid) -> MemoryPolicy {
        func value(_ name: String) -> String? {
            guard let raw = env[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        var policy = MemoryPolicy()
        if let raw = value("FACESOCIAL_DEVICES"), raw.lowercased() != "auto" {
            let names = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty, names.allSatisfy({ !$0.contains(":") && !$0.contains("=") }) else {
                throw Invalid(variable: "FACESOCIAL_DEVICES", reason: "expected auto or a list like GPU,CPU")
            }
            policy.devices = names.contains("CPU") ? names : names + ["CPU"]
        }
        if let raw = value("FACESOCIAL_DEVICE_BUDGETS") {
            for item in raw.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, let amount = amount(parts[1]) else {
                    throw Invalid(
                        variable: "FACESOCIAL_DEVICE_BUDGETS", reason: "expected DEVICE=SIZE|PERCENT%, got \"\(item)\"")
                }
                policy.budgets[parts[0]] = amount
            }
        }
        if let raw = value("FACESOCIAL_POOLS") {
            for group in raw.split(separator: ";") {
                let parts = group.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw Invalid(
                        variable: "FACESOCIAL_POOLS", reason: "expected DEVICE:pool=SIZE,…;DEVICE:…, got \"\(group)\"")
                }
                var pools: [Pool] = []
                for item in parts[1].split(separator: ",") {
                    let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    guard kv.count == 2, !kv[0].isEmpty, kv[0] != PlacementTarget.defaultPool,
                        !pools.contains(where: { $0.name == kv[0] }), let amount = amount(kv[1])
                    else {
                        throw Invalid(
                            variable: "FACESOCIAL_POOLS",
                            reason: "expected pool=SIZE|PERCENT% with unique names other than default, got \"\(item)\"")
                    }
                    pools.append(Pool(name: kv[0], amount: amount))
                }
                policy.pools[parts[0]] = pools
            }
        }
        if let raw = value("FACESOCIAL_MODEL_PLACEMENT") {
            for item in raw.split(separator: ";") {
                let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                let targets = parts.count == 2 ? parts[1].split(separator: ">").map { PlacementTarget(String($0)) } : []
                guard parts.count == 2, !parts[0].isEmpty, !targets.isEmpty, !targets.contains(nil) else {
                    throw Invalid(
                        variable: "FACESOCIAL_MODEL_PLACEMENT",
                        reason: "expected model=DEVICE[:pool]>DEVICE[:pool]…;…, got \"\(item)\"")
                }
                policy.placement[parts[0]] = targets.compactMap { $0 }
            }
        }
        if let raw = value("FACESOCIAL_IDLE_TTL") {
            for item in raw.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, let priority = ModelManifest.Priority(rawValue: parts[0]),
                    priority != .critical, let ttl = duration(parts[1])
                else {
                    throw Invalid(
                        variable: "FACESOCIAL_IDLE_TTL",
                        reason: "expected high|standard|low=DURATION (e.g. 10m, 30s, 0 for never), got \"\(item)\"")
                }
                policy.idleTTL[priority] = ttl == .zero ? nil : ttl
            }
        }
        if let raw = value("FACESOCIAL_FOOTPRINT") {
            switch raw.lowercased() {
            case "measure", "measured": policy.measureFootprints = true
            case "estimate": policy.measureFootprints = false
            default: throw Invalid(variable: "FACESOCIAL_FOOTPRINT", reason: "expected measure or estimate")
            }
        }
        func integer(_ name: String, _ range: ClosedRange<Int>) throws(Invalid) -> Int? {
            guard let raw = value(name) else { return nil }
            guard let number = Int(raw), range.contains(number) else {
                throw Invalid(variable: name, reason: "expected an integer in \(range), got \"\(raw)\"")
            }
            return number
        }
        if let limit = try integer("FACESOCIAL_QUEUE_LIMIT", 0...100_000) { policy.queueLimit = limit }
        if let ms = try integer("FACESOCIAL_QUEUE_TIMEOUT_MS", 1...3_600_000) {
            policy.queueTimeout = .milliseconds(ms)
        }
        if let batch = try integer("FACESOCIAL_BATCH_MAX", 1...64) { policy.maxBatch = batch }
        if let raw = value("FACESOCIAL_BATCH_WAIT_MS") {
            guard let ms = Double(raw), (0...1000).contains(ms) else {
                throw Invalid(variable: "FACESOCIAL_BATCH_WAIT_MS", reason: "expected milliseconds in 0…1000")
            }
            policy.batchWait = .microseconds(Int(ms * 1000))
        }
        return policy
    }

    /// `512MB`, `1.5GiB`, `300000000`, `25%`.
    static func amount(_ text: String) -> Amount? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") {
            guard let percent = Double(t.dropLast()), percent > 0, percent <= 100 else { return nil }
            return .fraction(percent / 100)
        }
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("KB", 1000), ("MB", 1_000_000),
            ("GB", 1_000_000_000), ("K", 1024), ("M", 1_048_576), ("G", 1_073_741_824), ("B", 1),
        ]
        for (suffix, factor) in units where t.uppercased().hasSuffix(suffix.uppercased()) {
            guard let number = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number >= 0
            else { return nil }
            return .bytes(Int(number * factor))
        }
        return Int(t).flatMap { $0 >= 0 ? .bytes($0) : nil }
    }

    /// `90s`, `10m`, `2h`, `500ms`, `0`.
    static func duration(_ text: String) -> Duration? {
        let t = text.lowercased()
        if t == "0" { return .zero }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where t.hasSuffix(suffix) {
            guard let number = Double(t.dropLast(suffix.count)), number >= 0 else { return nil }
            return .milliseconds(Int(number * seconds * 1000))
        }
        return nil
    }
}
