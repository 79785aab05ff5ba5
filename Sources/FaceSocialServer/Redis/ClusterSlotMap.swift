/// Redis Cluster's key space: 16384 slots, a key's slot being CRC16 (XMODEM) of the key, or of
/// the part between the first `{` and the next `}` when that part is not empty (a hash tag), so
/// keys that must meet in one script share a tag. The rules are Redis's cluster specification.
public enum ClusterSlot {
    public static let count = 16384

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    public static func of(_ key: [UInt8]) -> Int {
        var hashed = key[...]
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = key[(open + 1)..<close]
        }
        return Int(crc16(hashed) & 0x3FFF)
    }

    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// A cluster node by the address clients reach it at.
public struct ClusterNode: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Which master serves each slot and which replicas follow it, from `CLUSTER SLOTS`.
public struct ClusterSlotMap: Sendable, Equatable {
    public struct SlotRange: Sendable, Equatable {
        public let first: Int
        public let last: Int
        public let master: ClusterNode
        public let replicas: [ClusterNode]
    }

    public private(set) var ranges: [SlotRange]
    /// Each slot's master, by index into `owners` (-1: no master).
    private var ownerOfSlot: [Int16]
    private var owners: [ClusterNode]

    public init(ranges: [SlotRange]) {
        self.ranges = ranges.sorted { $0.first < $1.first }
        self.ownerOfSlot = Array(repeating: -1, count: ClusterSlot.count)
        self.owners = []
        for range in self.ranges {
            for slot in range.first...range.last { assign(slot: slot, to: range.master) }
        }
    }

    /// Parses a `CLUSTER SLOTS` reply; an empty host means the node that answered (`asked`).
    public static func parse(_ reply: RESPValue, asked: ClusterNode) throws -> ClusterSlotMap {
        guard let items = reply.array else { throw RedisError.unexpectedReply("CLUSTER SLOTS: not an array") }
        func node(_ value: RESPValue) throws -> ClusterNode {
            guard let fields = value.array, fields.count >= 2, let host = fields[0].string,
                let port = fields[1].integer, (1...65535).contains(port)
            else { throw RedisError.unexpectedReply("CLUSTER SLOTS: node entry") }
            return ClusterNode(host: host.isEmpty || host == "?" ? asked.host : host, port: Int(port))
        }
        let ranges = try items.map { item -> SlotRange in
            guard let fields = item.array, fields.count >= 3, let first = fields[0].integer,
                let last = fields[1].integer, 0 <= first, first <= last, last < ClusterSlot.count
            else { throw RedisError.unexpectedReply("CLUSTER SLOTS: range entry") }
            return SlotRange(
                first: Int(first), last: Int(last), master: try node(fields[2]), replicas: try fields[3...].map(node))
        }
        return ClusterSlotMap(ranges: ranges)
    }

    public func master(for slot: Int) -> ClusterNode? {
        let index = ownerOfSlot[slot]
        return index < 0 ? nil : owners[Int(index)]
    }

    /// A `MOVED` reply names the slot's new master before the next `CLUSTER SLOTS` would.
    public mutating func assign(slot: Int, to node: ClusterNode) {
        let index: Int
        if let known = owners.firstIndex(of: node) {
            index = known
        } else {
            owners.append(node)
            index = owners.count - 1
        }
        ownerOfSlot[slot] = Int16(index)
    }

    public var masters: [ClusterNode] {
        var seen = Set<ClusterNode>()
        return ranges.map(\.master).filter { seen.insert($0).inserted }
    }

    /// Every node the map names, masters first: where to ask for the next map.
    public var nodes: [ClusterNode] {
        var seen = Set<ClusterNode>()
        return (ranges.map(\.master) + ranges.flatMap(\.replicas)).filter { seen.insert($0).inserted }
    }

    public var uncoveredSlots: Int { ownerOfSlot.lazy.filter { $0 < 0 }.count }

    /// Masters replaced by one of their own replicas between `self` and `next`: failovers, as
    /// opposed to slots resharded to another master.
    public func failovers(to next: ClusterSlotMap) -> [(from: ClusterNode, to: ClusterNode)] {
        var seen = Set<ClusterNode>()
        var found: [(from: ClusterNode, to: ClusterNode)] = []
        for range in ranges {
            guard let now = next.master(for: range.first), now != range.master, range.replicas.contains(now),
                seen.insert(range.master).inserted
            else { continue }
            found.append((range.master, now))
        }
        return found
    }
}
