import Foundation

/// A hash set of UInt32 ordinals whose UUID keys live in the caller's array (`keys[ordinal]`):
/// open addressing with linear probing, 4 bytes a slot, and deletion by shifting the following
/// entries back (no tombstones). At 10 million faces it takes 64 MiB where a `[UUID: Int]` takes
/// about 400 MiB.
struct OrdinalTable: Sendable {
    /// 0 is an empty slot; otherwise the ordinal plus one.
    private(set) var slots: [UInt32]
    private(set) var count = 0
    private var mask: Int

    init(capacity: Int = 0) {
        let size = Self.size(for: capacity)
        slots = [UInt32](repeating: 0, count: size)
        mask = size - 1
    }

    /// A power of two that keeps the load at or below 3/4.
    private static func size(for capacity: Int) -> Int {
        var size = 16
        while size * 3 / 4 < capacity { size *= 2 }
        return size
    }

    static func hash(_ id: UUID) -> Int {
        let (a, b) = withUnsafeBytes(of: id.uuid) {
            ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        // Each half is mixed on its own before they meet, so no structure in the ids (random UUIDs
        // or not) can cancel out.
        var z = (a ^ (a >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z ^= (b ^ (b >> 29)) &* 0xC4CE_B9FE_1A85_EC53
        z = (z ^ (z >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: z ^ (z >> 29))
    }

    func find(_ id: UUID, keys: [UUID]) -> UInt32? {
        var i = Self.hash(id) & mask
        while slots[i] != 0 {
            let ordinal = slots[i] - 1
            if keys[Int(ordinal)] == id { return ordinal }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Inserts an ordinal whose key is already at `keys[ordinal]` and not yet in the table.
    mutating func insert(_ ordinal: UInt32, keys: [UUID]) {
        if (count + 1) > slots.count * 3 / 4 { grow(keys: keys) }
        var i = Self.hash(keys[Int(ordinal)]) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = ordinal + 1
        count += 1
    }

    /// Removes the key's entry and returns its ordinal (nil when absent).
    @discardableResult
    mutating func remove(_ id: UUID, keys: [UUID]) -> UInt32? {
        var i = Self.hash(id) & mask
        while slots[i] != 0 {
            let ordinal = slots[i] - 1
            if keys[Int(ordinal)] == id {
                // Shift back every later entry of the run that may live in the hole.
                var hole = i
                var j = i
                while true {
                    j = (j + 1) & mask
                    if slots[j] == 0 { break }
                    let home = Self.hash(keys[Int(slots[j] - 1)]) & mask
                    if (j - home) & mask >= (j - hole) & mask {
                        slots[hole] = slots[j]
                        hole = j
                    }
                }
                slots[hole] = 0
                count -= 1
                return ordinal
            }
            i = (i + 1) & mask
        }
        return nil
    }

    private mutating func grow(keys: [UUID]) {
        let old = slots
        slots = [UInt32](repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        for entry in old where entry != 0 {
            var i = Self.hash(keys[Int(entry - 1)]) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = entry
        }
    }

    var memoryBytes: Int { slots.capacity * 4 }
}
