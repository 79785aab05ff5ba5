import FaceKit

/// Gathers single-item inferences from concurrent callers and runs them as one [N, …] tensor:
/// a batch leaves when it reaches `maxBatch` items or when its first item has waited `maxWait`.
/// Every input and output of the model must have the batch as its first dimension.
actor MicroBatcher {
    private struct Item {
        var inputs: [String: Tensor]
        var continuation: CheckedContinuation<[String: Tensor], any Error>
    }

    let session: any InferenceSession
    let maxBatch: Int
    let maxWait: Duration
    private var pending: [Item] = []
    private var timer: Task<Void, Never>?
    private var generation = 0
    /// Batches run and items they carried, for the statistics.
    private(set) var batches = 0
    private(set) var items = 0

    init(session: any InferenceSession, maxBatch: Int, maxWait: Duration) {
        self.session = session
        self.maxBatch = max(1, min(maxBatch, session.maxBatch))
        self.maxWait = maxWait
    }

    /// Whether `inputs` can join a batch: one item, matching the model's inputs.
    nonisolated func accepts(_ inputs: [String: Tensor]) -> Bool {
        maxBatch > 1 && inputs.values.allSatisfy { $0.shape.first == 1 }
    }

    func submit(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        try await withCheckedThrowingContinuation { continuation in
            pending.append(Item(inputs: inputs, continuation: continuation))
            if pending.count >= maxBatch {
                flush()
            } else if pending.count == 1 {
                generation += 1
                let expected = generation
                let wait = maxWait
                timer = Task { [weak self] in
                    try? await Task.sleep(for: wait)
                    await self?.timerFired(expected)
                }
            }
        }
    }

    private func timerFired(_ expected: Int) {
        // A timer from a batch that already left (full) must not cut the next one short.
        guard expected == generation, !pending.isEmpty else { return }
        flush()
    }

    private func flush() {
        let batch = pending
        pending = []
        timer?.cancel()
        timer = nil
        generation += 1
        batches += 1
        items += batch.count
        let session = self.session
        Task.detached(priority: .userInitiated) { await Self.run(batch, on: session) }
    }

    private static func run(_ batch: [Item], on session: any InferenceSession) async {
        if batch.count == 1 {
            do { batch[0].continuation.resume(returning: try await session.infer(batch[0].inputs)) } catch {
                batch[0].continuation.resume(throwing: error)
            }
            return
        }
        do {
            var stacked: [String: Tensor] = [:]
            for name in batch[0].inputs.keys {
                let parts = try batch.map { item -> Tensor in
                    guard let tensor = item.inputs[name], tensor.shape == batch[0].inputs[name]!.shape else {
                        throw BatchingError.mismatchedInputs(name)
                    }
                    return tensor
                }
                stacked[name] = Tensor.stack(parts)
            }
            let outputs = try await session.infer(stacked)
            var split = [[String: Tensor]](repeating: [:], count: batch.count)
            for (name, tensor) in outputs {
                guard tensor.shape.first == batch.count else {
                    throw BatchingError.outputNotBatched(name, tensor.shape)
                }
                for (index, part) in tensor.unstacked().enumerated() { split[index][name] = part }
            }
            for (item, result) in zip(batch, split) { item.continuation.resume(returning: result) }
        } catch {
            batch.forEach { $0.continuation.resume(throwing: error) }
        }
    }
}

enum BatchingError: Error, CustomStringConvertible {
    case mismatchedInputs(String)
    case outputNotBatched(String, [Int])

    var description: String {
        switch self {
        case .mismatchedInputs(let name): "batched items disagree on input \(name)"
        case .outputNotBatched(let name, let shape): "output \(name) has shape \(shape), not batch-first"
        }
    }
}

extension Tensor {
    /// Concatenates [1, …] tensors of one shape into [N, …].
    static func stack(_ parts: [Tensor]) -> Tensor {
        var data: [Float] = []
        data.reserveCapacity(parts.reduce(0) { $0 + $1.data.count })
        for part in parts { data.append(contentsOf: part.data) }
        return Tensor(shape: [parts.count] + parts[0].shape.dropFirst(), data: data)
    }

    /// Splits [N, …] into N tensors of shape [1, …].
    func unstacked() -> [Tensor] {
        let n = shape.first ?? 0
        guard n > 0 else { return [] }
        let stride = data.count / n
        return (0..<n).map { i in
            Tensor(shape: [1] + shape.dropFirst(), data: Array(data[(i * stride)..<((i + 1) * stride)]))
        }
    }
}
