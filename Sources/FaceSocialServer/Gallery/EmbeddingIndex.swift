import Dispatch
import Foundation

/// An exact in-memory search index over L2-normalised embeddings: one contiguous Float32 buffer of
/// rows, dot products with SIMD, and a bounded min-heap for the top k. Cosine similarity equals
/// the dot product because every row and query is normalised. Search returns the best subjects,
/// each scored by its best face.
public struct EmbeddingIndex: Sendable {
    public struct Match: Sendable, Equatable {
        public let subjectID: UUID
        public let faceID: UUID
        public let similarity: Float
    }

    public let dimension: Int
    private(set) var vectors: [Float] = []
    private(set) var faceIDs: [UUID] = []
    private var rowSubjects: [Int32] = []
    private var rowOfFace: [UUID: Int] = [:]
    private var subjectIDs: [UUID] = []
    private var subjectOrdinal: [UUID: Int32] = [:]

    public init(dimension: Int) {
        precondition(dimension > 0 && dimension % 16 == 0, "the SIMD kernel works on multiples of 16 floats")
        self.dimension = dimension
    }

    public var count: Int { faceIDs.count }
    public var subjectCount: Int { Set(rowSubjects).count }

    public mutating func reserve(_ rows: Int) {
        vectors.reserveCapacity(rows * dimension)
        faceIDs.reserveCapacity(rows)
        rowSubjects.reserveCapacity(rows)
    }

    /// Adds (or replaces) a face's row.
    public mutating func add(faceID: UUID, subjectID: UUID, vector: [Float]) {
        precondition(vector.count == dimension)
        if rowOfFace[faceID] != nil { remove(faceID: faceID) }
        let ordinal: Int32
        if let known = subjectOrdinal[subjectID] {
            ordinal = known
        } else {
            ordinal = Int32(subjectIDs.count)
            subjectIDs.append(subjectID)
            subjectOrdinal[subjectID] = ordinal
        }
        rowOfFace[faceID] = faceIDs.count
        faceIDs.append(faceID)
        rowSubjects.append(ordinal)
        vectors.append(contentsOf: vector)
    }

    /// Removes a face by moving the last row into its place (rows have no order).
    @discardableResult
    public mutating func remove(faceID: UUID) -> Bool {
        guard let row = rowOfFace.removeValue(forKey: faceID) else { return false }
        let last = faceIDs.count - 1
        if row != last {
            let moved = faceIDs[last]
            faceIDs[row] = moved
            rowSubjects[row] = rowSubjects[last]
            rowOfFace[moved] = row
            vectors.withUnsafeMutableBufferPointer { buffer in
                for i in 0..<dimension { buffer[row * dimension + i] = buffer[last * dimension + i] }
            }
        }
        faceIDs.removeLast()
        rowSubjects.removeLast()
        vectors.removeLast(dimension)
        return true
    }

    /// Removes every face of a subject; returns how many were removed.
    @discardableResult
    public mutating func remove(subjectID: UUID) -> Int {
        guard let ordinal = subjectOrdinal[subjectID] else { return 0 }
        let faces = faceIDs.indices.filter { rowSubjects[$0] == ordinal }.map { faceIDs[$0] }
        for face in faces { remove(faceID: face) }
        return faces.count
    }

    /// Dot products of `query` with every row, written to `scores` (rows split across cores
    /// when the gallery is large enough to pay for the hand-off).
    func score(_ query: [Float], into scores: UnsafeMutableBufferPointer<Float>) {
        let rows = count
        let dimension = self.dimension
        let chunks = rows >= 32_768 ? ProcessInfo.processInfo.activeProcessorCount : 1
        vectors.withUnsafeBufferPointer { matrix in
            query.withUnsafeBufferPointer { q in
                // Read-only here, and every chunk writes its own rows of `out`.
                nonisolated(unsafe) let base = UnsafeRawPointer(matrix.baseAddress!)
                let qBase = UnsafeRawPointer(q.baseAddress!)
                let lanes = dimension / 16
                // The query's lanes stay in registers for the whole chunk.
                let qv = (0..<lanes).map { qBase.loadUnaligned(fromByteOffset: $0 * 64, as: SIMD16<Float>.self) }
                nonisolated(unsafe) let out = scores.baseAddress!
                let body: @Sendable (Int) -> Void = { chunk in
                    let start = rows * chunk / chunks
                    let end = rows * (chunk + 1) / chunks
                    if lanes == 8 {
                        // 128-d (SFace): fully unrolled.
                        let q0 = qv[0]
                        let q1 = qv[1]
                        let q2 = qv[2]
                        let q3 = qv[3]
                        let q4 = qv[4]
                        let q5 = qv[5]
                        let q6 = qv[6]
                        let q7 = qv[7]
                        for row in start..<end {
                            let p = base + row * 512
                            var a = p.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) * q0
                            var b = p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) * q1
                            a.addProduct(p.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), q2)
                            b.addProduct(p.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self), q3)
                            a.addProduct(p.loadUnaligned(fromByteOffset: 256, as: SIMD16<Float>.self), q4)
                            b.addProduct(p.loadUnaligned(fromByteOffset: 320, as: SIMD16<Float>.self), q5)
                            a.addProduct(p.loadUnaligned(fromByteOffset: 384, as: SIMD16<Float>.self), q6)
                            b.addProduct(p.loadUnaligned(fromByteOffset: 448, as: SIMD16<Float>.self), q7)
                            out[row] = (a + b).sum()
                        }
                    } else {
                        for row in start..<end {
                            let p = base + row * dimension * 4
                            var acc = SIMD16<Float>()
                            for lane in 0..<lanes {
                                acc.addProduct(
                                    p.loadUnaligned(fromByteOffset: lane * 64, as: SIMD16<Float>.self), qv[lane])
                            }
                            out[row] = acc.sum()
                        }
                    }
                }
                if chunks == 1 {
                    body(0)
                } else {
                    DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
                }
            }
        }
    }

    /// The `k` best subjects for a normalised query, best first, each with its best face.
    public func search(_ query: [Float], k: Int) -> [Match] {
        precondition(query.count == dimension)
        guard k > 0, count > 0 else { return [] }
        var scores = [Float](repeating: 0, count: count)
        scores.withUnsafeMutableBufferPointer { score(query, into: $0) }
        // Each subject's best row, then the top k subjects by a bounded min-heap.
        var bestRow = [Int32](repeating: -1, count: subjectIDs.count)
        for row in 0..<count {
            let subject = Int(rowSubjects[row])
            let current = bestRow[subject]
            if current < 0 || scores[row] > scores[Int(current)] { bestRow[subject] = Int32(row) }
        }
        var heap = TopKHeap(capacity: k)
        for row in bestRow where row >= 0 { heap.offer(scores[Int(row)], Int(row)) }
        return heap.sortedDescending().map {
            Match(subjectID: subjectIDs[Int(rowSubjects[$0.1])], faceID: faceIDs[$0.1], similarity: $0.0)
        }
    }
}

/// A min-heap of at most `capacity` (score, row) pairs: the root is the weakest of the best seen,
/// so each candidate costs one comparison unless it beats it.
struct TopKHeap {
    let capacity: Int
    private(set) var items: [(Float, Int)] = []

    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(capacity)
    }

    mutating func offer(_ score: Float, _ row: Int) {
        if items.count < capacity {
            items.append((score, row))
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard items[child].0 < items[parent].0 else { break }
                items.swapAt(child, parent)
                child = parent
            }
        } else if score > items[0].0 {
            items[0] = (score, row)
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < items.count, items[left].0 < items[smallest].0 { smallest = left }
                if right < items.count, items[right].0 < items[smallest].0 { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
    }

    func sortedDescending() -> [(Float, Int)] { items.sorted { $0.0 > $1.0 } }
}
