import CVectorKernels
import Dispatch
import Foundation

extension QuantizedIVFIndex {
    /// How a build trains its centroids.
    public struct Training: Sendable {
        public var lists: Int
        /// Spherical k-means rounds over the sample.
        public var iterations: Int
        /// Sample rows per list (at most every row).
        public var samplesPerList: Int
        public var seed: UInt64

        public init(lists: Int, iterations: Int = 10, samplesPerList: Int = 64, seed: UInt64 = 0x5EED) {
            self.lists = lists
            self.iterations = iterations
            self.samplesPerList = samplesPerList
            self.seed = seed
        }

        /// The list count for a gallery: about the square root of its rows, as a power of two
        /// between 64 and 4096 (4096 at 10 million rows: about 2,400 rows a list).
        public static func lists(forRows rows: Int) -> Int {
            var lists = 64
            while lists < 4096 && lists * lists < rows { lists *= 2 }
            return lists
        }
    }

    /// Spherical k-means: rows go to the centroid with the largest dot product, each centroid
    /// becomes the normalised mean of its rows, and an empty list takes a random sample row.
    public static func trainCentroids(sample: [Float], dimension: Int, training: Training) -> [Float] {
        let rows = sample.count / dimension
        let lists = min(training.lists, rows)
        precondition(lists > 0)
        var random = SplitMix64(state: training.seed)
        // The first centroids: distinct sample rows picked by a seeded shuffle.
        var picks = Array(0..<rows)
        for i in 0..<lists { picks.swapAt(i, i + Int(random.next() % UInt64(rows - i))) }
        var centroids = [Float](repeating: 0, count: lists * dimension)
        for l in 0..<lists {
            for i in 0..<dimension { centroids[l * dimension + i] = sample[picks[l] * dimension + i] }
        }
        var labels = [Int32](repeating: 0, count: rows)
        for _ in 0..<training.iterations {
            assign(sample, rows: rows, dimension: dimension, centroids: centroids, into: &labels)
            var sums = [Float](repeating: 0, count: lists * dimension)
            var sizes = [Int](repeating: 0, count: lists)
            for r in 0..<rows {
                let l = Int(labels[r])
                sizes[l] += 1
                for i in 0..<dimension { sums[l * dimension + i] += sample[r * dimension + i] }
            }
            for l in 0..<lists {
                if sizes[l] == 0 {
                    let r = Int(random.next() % UInt64(rows))
                    for i in 0..<dimension { sums[l * dimension + i] = sample[r * dimension + i] }
                }
                var norm: Float = 0
                for i in 0..<dimension { norm += sums[l * dimension + i] * sums[l * dimension + i] }
                let inverse = norm > 0 ? 1 / norm.squareRoot() : 0
                for i in 0..<dimension { centroids[l * dimension + i] = sums[l * dimension + i] * inverse }
            }
        }
        return centroids
    }

    /// The nearest centroid of each row, split across cores.
    static func assign(_ rowsBuffer: [Float], rows: Int, dimension: Int, centroids: [Float], into labels: inout [Int32])
    {
        let lists = centroids.count / dimension
        let parts = rows >= 1024 ? ProcessInfo.processInfo.activeProcessorCount : 1
        rowsBuffer.withUnsafeBufferPointer { matrix in
            centroids.withUnsafeBufferPointer { c in
                labels.withUnsafeMutableBufferPointer { labels in
                    nonisolated(unsafe) let matrix = matrix
                    nonisolated(unsafe) let c = c
                    nonisolated(unsafe) let labels = labels
                    DispatchQueue.concurrentPerform(iterations: parts) { part in
                        var scores = [Float](repeating: 0, count: lists)
                        scores.withUnsafeMutableBufferPointer { scores in
                            for r in (rows * part / parts)..<(rows * (part + 1) / parts) {
                                labels[r] = Int32(
                                    argmax(
                                        c.baseAddress!, lists, dimension, matrix.baseAddress! + r * dimension,
                                        scores.baseAddress!))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Builds an index from rows given by `forEachRow` (called three times: to sample, to assign
    /// and to add; rows must come in the same order each time). Lists are reserved at their exact
    /// sizes before any row is added (the first later add to a list grows it by an eighth).
    public static func build(
        dimension: Int, rows: Int, subjects: Int, training: Training, probes: Int, candidates: Int,
        refinementBits: Int = defaultRefinementBits, log: ((String) -> Void)? = nil,
        forEachRow: ((UUID, UUID, UnsafePointer<Float>) -> Void) -> Void
    ) -> QuantizedIVFIndex {
        var stage = ContinuousClock.now
        func lap(_ what: String) {
            guard let log else { return }
            let d = ContinuousClock.now - stage
            log(
                "\(what) \(String(format: "%.1f", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)) s"
            )
            stage = ContinuousClock.now
        }
        let sampleRows = min(rows, max(1, training.lists * training.samplesPerList))
        let stride = max(1, rows / sampleRows)
        var sample: [Float] = []
        sample.reserveCapacity(sampleRows * dimension)
        var r = 0
        forEachRow { _, _, vector in
            if r % stride == 0 && sample.count < sampleRows * dimension {
                sample.append(contentsOf: UnsafeBufferPointer(start: vector, count: dimension))
            }
            r += 1
        }
        let centroids = trainCentroids(sample: sample, dimension: dimension, training: training)
        lap("train \(training.lists) centroids on \(sample.count / dimension) rows x \(training.iterations) rounds:")
        sample = []
        var index = QuantizedIVFIndex(
            centroids: centroids, dimension: dimension, trainedRows: rows, probes: probes, candidates: candidates,
            refinementBits: refinementBits)
        // Assign in chunks (each split across cores), remembering each row's list.
        var labels = [Int32](repeating: 0, count: rows)
        let chunkRows = 8192
        var chunk = [Float](repeating: 0, count: chunkRows * dimension)
        var chunkLabels = [Int32](repeating: 0, count: chunkRows)
        var filled = 0
        var done = 0
        func flush() {
            guard filled > 0 else { return }
            assign(
                Array(chunk.prefix(filled * dimension)), rows: filled, dimension: dimension, centroids: centroids,
                into: &chunkLabels)
            for i in 0..<filled { labels[done + i] = chunkLabels[i] }
            done += filled
            filled = 0
        }
        forEachRow { _, _, vector in
            for i in 0..<dimension { chunk[filled * dimension + i] = vector[i] }
            filled += 1
            if filled == chunkRows { flush() }
        }
        flush()
        lap("assign \(rows) rows:")
        var listRows = [Int](repeating: 0, count: index.listCount)
        for l in labels { listRows[Int(l)] += 1 }
        // A sixteenth of headroom for enrolments before the per-face columns first grow.
        index.reserve(faces: rows + rows / 16, subjects: subjects + subjects / 16, listRows: listRows)
        r = 0
        forEachRow { face, subject, vector in
            index.add(faceID: face, subjectID: subject, vector: vector, list: Int(labels[r]))
            r += 1
        }
        lap("quantise and add:")
        return index
    }

    /// An index over the rows of an exact index.
    public static func build(
        from exact: EmbeddingIndex, training: Training, probes: Int, candidates: Int,
        refinementBits: Int = defaultRefinementBits, log: ((String) -> Void)? = nil
    ) -> QuantizedIVFIndex {
        build(
            dimension: exact.dimension, rows: exact.count, subjects: exact.subjectIDs.count, training: training,
            probes: probes, candidates: candidates, refinementBits: refinementBits, log: log
        ) { body in
            exact.vectors.withUnsafeBufferPointer { v in
                for row in 0..<exact.count {
                    body(
                        exact.faceIDs[row], exact.subjectIDs[Int(exact.rowSubjects[row])],
                        v.baseAddress! + row * exact.dimension)
                }
            }
        }
    }

    /// The same rows under new centroids (the float rows are gone: trains on the refined 8-bit rows).
    public func retrained(training: Training) -> QuantizedIVFIndex {
        QuantizedIVFIndex.build(
            dimension: dimension, rows: count, subjects: subjectIDs.count, training: training, probes: probes,
            candidates: candidates, refinementBits: refinementBits, forEachRow: forEachRow)
    }
}

/// SplitMix64: a small, fast, seeded generator, so index builds, benchmarks and tests are
/// deterministic (the system's randomness is never used for them).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func gaussian() -> Float {
        let u = (Double(next() >> 11) + 0.5) / Double(1 << 53)
        let v = (Double(next() >> 11) + 0.5) / Double(1 << 53)
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }

    /// A unit vector from uniform components in [-1, 1] (not uniform on the sphere; the identify
    /// benchmark's tables were made with it).
    public mutating func unitVector(_ dimension: Int = 128) -> [Float] {
        var v = (0..<dimension).map { _ in Float(Int64(bitPattern: next() >> 1) % 2_000_001 - 1_000_000) / 1_000_000 }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in v.indices { v[i] /= norm }
        return v
    }

    /// A unit vector uniform on the sphere (normalised Gaussian components).
    public mutating func gaussianUnitVector(_ dimension: Int = 128) -> [Float] {
        var v = (0..<dimension).map { _ in gaussian() }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in v.indices { v[i] /= norm }
        return v
    }
}
