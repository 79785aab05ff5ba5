/// The most recent inference times of a model, for its p50 / p95.
struct LatencyWindow {
    private var samples: [Double] = []
    private var next = 0
    let size: Int

    init(size: Int = 512) { self.size = size }

    mutating func add(_ milliseconds: Double) {
        if samples.count < size {
            samples.append(milliseconds)
        } else {
            samples[next] = milliseconds
        }
        next = (next + 1) % size
    }

    func percentile(_ p: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Int((p * Double(sorted.count - 1)).rounded())
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }
}
