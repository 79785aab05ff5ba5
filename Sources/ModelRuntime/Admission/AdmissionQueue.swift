/// Why a request was refused admission to a model.
public enum AdmissionError: Error, Sendable, CustomStringConvertible {
    /// Every slot is busy and the wait queue is full.
    case queueFull(model: String, queued: Int, retryAfterSeconds: Int)
    /// The request waited in the queue longer than the configured timeout.
    case timedOut(model: String, waitedMilliseconds: Int, retryAfterSeconds: Int)

    public var retryAfterSeconds: Int {
        switch self {
        case .queueFull(_, _, let seconds), .timedOut(_, _, let seconds): seconds
        }
    }

    public var model: String {
        switch self {
        case .queueFull(let model, _, _), .timedOut(let model, _, _): model
        }
    }

    public var description: String {
        switch self {
        case .queueFull(let model, let queued, _):
            "model \(model) is busy and its wait queue is full (\(queued) waiting)"
        case .timedOut(let model, let waited, _): "model \(model) stayed busy for \(waited) ms; the request gave up"
        }
    }
}

/// Per-model admission: `capacity` callers run at once (the engine's infer requests, times the
/// batch size when batched), up to `limit` more wait in FIFO order, and the rest are refused. The
/// memory manager owns one per model and drives it from its actor, so this needs no locking.
struct AdmissionQueue {
    enum Decision {
        case admitted, wait, full
    }

    var capacity: Int
    let limit: Int
    private(set) var running = 0
    private var waiters: [(token: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []

    init(capacity: Int, limit: Int) {
        self.capacity = max(1, capacity)
        self.limit = limit
    }

    var queued: Int { waiters.count }
    var isIdle: Bool { running == 0 && waiters.isEmpty }

    mutating func enter() -> Decision {
        if running < capacity && waiters.isEmpty {
            running += 1
            return .admitted
        }
        return waiters.count < limit ? .wait : .full
    }

    mutating func enqueue(token: UInt64, _ continuation: CheckedContinuation<Void, any Error>) {
        waiters.append((token, continuation))
    }

    /// A caller finished: its slot passes to the longest waiter.
    mutating func leave() {
        running -= 1
        admitWaiters()
    }

    /// A reload may bring a different number of infer requests.
    mutating func resize(_ capacity: Int) {
        self.capacity = max(1, capacity)
        admitWaiters()
    }

    /// Removes a waiter whose time ran out; nil when it was already admitted.
    mutating func expire(token: UInt64) -> CheckedContinuation<Void, any Error>? {
        guard let index = waiters.firstIndex(where: { $0.token == token }) else { return nil }
        return waiters.remove(at: index).continuation
    }

    private mutating func admitWaiters() {
        while running < capacity, !waiters.isEmpty {
            running += 1
            waiters.removeFirst().continuation.resume()
        }
    }
}
