import CVectorKernels
import Dispatch
import Foundation

/// An exact in-memory search index over L2-normalised embeddings: one contiguous Float32 buffer of
/// rows, dot products by the CVectorKernels SIMD kernels, and a bounded min-heap for the top k. Cosine similarity equals
/// the dot product because every row and query is normalised. Search returns the best subjects,
/// each scored by its best face.
public struct EmbeddingIndex: Sendable {
    public struct Match: Sendable, Equatable {
        public let subjectID: UUID
        public let faceID: UUID
        public let similarity: Float

        public init(subjectID: UUID, faceID: UUID, similarity: Float) {
            self.subjectID = subjectID
            self.faceID = faceID
            self.similarity = similarity
        }
    }

    public let dimension: Int
    private(set) var vectors: [Float] = []
    private(set) var faceIDs: [UUID] = []
    private(set) var rowSubjects: [Int32] = []
    private var rowOfFace: [UUID: Int] = [:]
    private(set) var subjectIDs: [UUID] = []
    private(set) var subjectOrdinal: [UUID: Int32] = [:]

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
        let ordinal = self.ordinal(of: subjectID)
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

    /// Moves every face of `subjectID` to `target` (clusters merging); returns how many moved.
    @discardableResult
    public mutating func relabel(subjectID: UUID, to target: UUID) -> Int {
        guard subjectID != target, let from = subjectOrdinal.removeValue(forKey: subjectID) else { return 0 }
        let to = ordinal(of: target)
        var moved = 0
        for row in rowSubjects.indices where rowSubjects[row] == from {
            rowSubjects[row] = to
            moved += 1
        }
        return moved
    }

    /// A subject's number in `rowSubjects`, given on first sight.
    private mutating func ordinal(of subjectID: UUID) -> Int32 {
        if let known = subjectOrdinal[subjectID] { return known }
        let ordinal = Int32(subjectIDs.count)
        subjectIDs.append(subjectID)
        subjectOrdinal[subjectID] = ordinal
        return ordinal
    }

    /// How many faces a subject has here.
    public func faceCount(subjectID: UUID) -> Int {
        guard let ordinal = subjectOrdinal[subjectID] else { return 0 }
        return rowSubjects.reduce(0) { $0 + ($1 == ordinal ? 1 : 0) }
    }

    /// Rows scored per kernel call: the block's scores stay in L1 while they are filtered.
    static let blockRows = 4096

    /// Which dot-product kernel this CPU runs (benchmarks report it).
    public static var kernel: String { String(cString: fs_dot_rows_kernel()) }

    /// The `k` best subjects for a normalised query, best first, each with its best face.
    /// One pass over the rows: each block of rows is scored by the SIMD kernel, and only scores
    /// above the weakest of the best `k` subjects so far touch the heap. Large galleries are
    /// split across cores, each part keeps its own best `k`, and the parts are merged.
    public func search(_ query: [Float], k: Int) -> [Match] { search(query, k: k, perFace: false) }

    /// The `k` best faces, best first, whatever their subjects (benchmarks measure face recall with it).
    public func searchFaces(_ query: [Float], k: Int) -> [Match] { search(query, k: k, perFace: true) }

    /// The bytes the index holds for its rows (vectors, ids and maps, by capacity; an estimate for the maps).
    public var memoryBytes: Int {
        vectors.capacity * 4 + faceIDs.capacity * 16 + rowSubjects.capacity * 4 + rowOfFace.capacity * 24
            + subjectIDs.capacity * 16 + subjectOrdinal.capacity * 20
    }

    func search(_ query: [Float], k: Int, perFace: Bool) -> [Match] {
        precondition(query.count == dimension)
        guard k > 0, count > 0 else { return [] }
        let rows = count
        let dimension = self.dimension
        let parts = rows >= 32_768 ? ProcessInfo.processInfo.activeProcessorCount : 1
        var best = SubjectTopK(capacity: k)
        vectors.withUnsafeBufferPointer { matrix in
            rowSubjects.withUnsafeBufferPointer { subjects in
                query.withUnsafeBufferPointer { q in
                    // Read-only while the parts run; each part writes only its own slot of `found`.
                    nonisolated(unsafe) let matrix = matrix
                    nonisolated(unsafe) let subjects = subjects
                    nonisolated(unsafe) let q = q
                    var found = [SubjectTopK](repeating: SubjectTopK(capacity: k), count: parts)
                    found.withUnsafeMutableBufferPointer { found in
                        nonisolated(unsafe) let found = found
                        let body: @Sendable (Int) -> Void = { part in
                            var top = SubjectTopK(capacity: k)
                            var scores = [Float](repeating: 0, count: Self.blockRows)
                            var block = rows * part / parts
                            let end = rows * (part + 1) / parts
                            scores.withUnsafeMutableBufferPointer { scores in
                                while block < end {
                                    let n = min(Self.blockRows, end - block)
                                    fs_dot_rows(
                                        matrix.baseAddress! + block * dimension, n, dimension, q.baseAddress!,
                                        scores.baseAddress!)
                                    var floor = top.floor
                                    for i in 0..<n where scores[i] > floor {
                                        let row = block + i
                                        top.offer(scores[i], row: row, subject: perFace ? Int32(row) : subjects[row])
                                        floor = top.floor
                                    }
                                    block += n
                                }
                            }
                            found[part] = top
                        }
                        if parts == 1 {
                            body(0)
                        } else {
                            DispatchQueue.concurrentPerform(iterations: parts, execute: body)
                        }
                    }
                    for part in found {
                        for item in part.items { best.offer(item.score, row: item.row, subject: item.subject) }
                    }
                }
            }
        }
        return best.sortedDescending().map {
            Match(subjectID: subjectIDs[Int(rowSubjects[$0.row])], faceID: faceIDs[$0.row], similarity: $0.score)
        }
    }
}

/// The best `capacity` subjects seen so far, each with its best row: a min-heap whose root is the
/// weakest of them, so a candidate costs one comparison unless it beats the root. A row below the
/// root can be skipped even when its subject is not in the heap: `capacity` other subjects already
/// score higher.
struct SubjectTopK {
    struct Item {
        var score: Float
        var row: Int
        var subject: Int32
    }

    let capacity: Int
    private(set) var items: [Item] = []

    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(capacity)
    }

    /// Scores at or below this cannot enter (−∞ until the heap is full).
    var floor: Float { items.count < capacity ? -.infinity : items[0].score }

    mutating func offer(_ score: Float, row: Int, subject: Int32) {
        // A subject already held keeps only its better row. Accepted candidates are rare after the
        // first rows, so a linear look-up over at most `capacity` items is cheaper than a map.
        if let held = items.firstIndex(where: { $0.subject == subject }) {
            guard score > items[held].score else { return }
            items[held] = Item(score: score, row: row, subject: subject)
            siftDown(from: held)  // a larger key moves away from the root of a min-heap
            return
        }
        push(Item(score: score, row: row, subject: subject))
    }

    /// `offer` for rows that are never offered twice (no look-up of an earlier item).
    mutating func offerDistinct(_ score: Float, row: Int) {
        push(Item(score: score, row: row, subject: 0))
    }

    /// Into the heap while it has room, else in place of the weakest when better.
    private mutating func push(_ item: Item) {
        if items.count < capacity {
            items.append(item)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard items[child].score < items[parent].score else { break }
                items.swapAt(child, parent)
                child = parent
            }
        } else if item.score > items[0].score {
            items[0] = item
            siftDown(from: 0)
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left].score < items[smallest].score { smallest = left }
            if right < items.count, items[right].score < items[smallest].score { smallest = right }
            if smallest == parent { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }

    func sortedDescending() -> [Item] {
        items.sorted { $0.score > $1.score || ($0.score == $1.score && $0.row < $1.row) }
    }
}
