import Synchronization

/// Caches that hold memory outside the models (a gallery index, a response cache) register a
/// size reader here, and `/system/memory-profile` reports each by name.
final class MemoryCaches: Sendable {
    static let shared = MemoryCaches()
    private let readers = Mutex<[String: @Sendable () -> Int]>([:])

    func register(_ name: String, size: @escaping @Sendable () -> Int) {
        readers.withLock { $0[name] = size }
    }

    func sizes() -> [String: Int] {
        readers.withLock { $0 }.mapValues { $0() }
    }
}
