import CVectorKernels
import Dispatch
import Foundation

/// The large-gallery index: an inverted file over 8-bit rows with a re-scored shortlist.
///
/// - Spherical k-means centroids split the rows into `listCount` lists; a row lives in the list
///   of its nearest centroid (largest dot product).
/// - Each row is stored as its residual from its list's centroid (smaller than the row, so finer
///   steps), in 128 signed 8-bit steps of its own scale (`max |r_i| / 127`, 4 bytes),
///   kept as unsigned bytes (value + 128) so that AVX-512 VNNI multiplies them with the 8-bit
///   query directly; the query's constant `128 * sum(q)` is subtracted once.
/// - A search scores the query against every centroid, scans the best `probes` lists with the
///   8-bit kernel (split across cores), adds the list's centroid score, keeps the best `candidates` subjects by that estimate,
///   and re-scores each of their rows with the float query against the 8-bit row (only the row's
///   rounding is left: about 1e-3 of cosine) before the final top k.
/// - Adding a row appends to one list; removing one moves that list's last row into its place.
///   Neither copies more than one list.
public struct QuantizedIVFIndex: Sendable {
    public let dimension: Int
    /// listCount x dimension, unit rows.
    public let centroids: [Float]
    public var listCount: Int { centroids.count / dimension }
    /// How many rows the centroids were trained for (the retraining policy compares against it).
    public let trainedRows: Int
    /// Lists scanned per query.
    public var probes: Int
    /// Subjects kept by the 8-bit estimate and re-scored.
    public var candidates: Int

    struct List: Sendable {
        var codes: [UInt8] = []
        var scales: [Float] = []
        var ordinals: [UInt32] = []
    }
    private(set) var lists: [List]
    // Per face ordinal; a free ordinal has `faceList == .max`.
    private(set) var faceIDs: [UUID] = []
    private(set) var faceSubjects: [Int32] = []
    private var faceList: [UInt32] = []
    private var facePosition: [UInt32] = []
    private var freeOrdinals: [UInt32] = []
    private var faceTable = OrdinalTable()
    private(set) var subjectIDs: [UUID] = []
    private var subjectTable = OrdinalTable()
    public private(set) var count = 0

    public init(centroids: [Float], dimension: Int, trainedRows: Int, probes: Int, candidates: Int) {
        precondition(dimension > 0 && dimension % 16 == 0 && centroids.count % dimension == 0 && !centroids.isEmpty)
        self.dimension = dimension
        self.centroids = centroids
        self.trainedRows = trainedRows
        self.probes = probes
        self.candidates = candidates
        lists = [List](repeating: List(), count: centroids.count / dimension)
    }

    public var subjectCount: Int {
        var seen = [Bool](repeating: false, count: subjectIDs.count)
        var n = 0
        for (ordinal, list) in faceList.enumerated() where list != .max {
            let s = Int(faceSubjects[ordinal])
            if !seen[s] {
                seen[s] = true
                n += 1
            }
        }
        return n
    }

    /// Bytes held, by capacity: codes, scales, ordinals, per-face ids and places, both tables.
    public var memoryBytes: Int {
        var bytes = centroids.capacity * 4 + lists.capacity * MemoryLayout<List>.stride
        for list in lists { bytes += list.codes.capacity + list.scales.capacity * 4 + list.ordinals.capacity * 4 }
        bytes += faceIDs.capacity * 16 + faceSubjects.capacity * 4 + faceList.capacity * 4 + facePosition.capacity * 4
        bytes += freeOrdinals.capacity * 4 + faceTable.memoryBytes + subjectIDs.capacity * 16 + subjectTable.memoryBytes
        return bytes
    }

    /// The rows of the longest and shortest non-empty list (the benchmark reports the balance).
    public var listSizes: [Int] { lists.map(\.ordinals.count) }

    public mutating func reserve(faces: Int, subjects: Int, listRows: [Int]? = nil) {
        faceIDs.reserveCapacity(faces)
        faceSubjects.reserveCapacity(faces)
        faceList.reserveCapacity(faces)
        facePosition.reserveCapacity(faces)
        subjectIDs.reserveCapacity(subjects)
        if faceTable.count == 0 { faceTable = OrdinalTable(capacity: faces) }
        if subjectTable.count == 0 { subjectTable = OrdinalTable(capacity: subjects) }
        if let listRows {
            for (l, rows) in listRows.enumerated() {
                lists[l].codes.reserveCapacity(rows * dimension)
                lists[l].scales.reserveCapacity(rows)
                lists[l].ordinals.reserveCapacity(rows)
            }
        }
    }

    // MARK: - Changes

    /// The list whose centroid is nearest to a unit vector.
    public func nearestList(_ vector: UnsafePointer<Float>) -> Int {
        var scores = [Float](repeating: 0, count: listCount)
        return scores.withUnsafeMutableBufferPointer { scores in
            centroids.withUnsafeBufferPointer { c in
                Self.argmax(c.baseAddress!, listCount, dimension, vector, scores.baseAddress!)
            }
        }
    }

    static func argmax(
        _ centroids: UnsafePointer<Float>, _ lists: Int, _ dimension: Int, _ vector: UnsafePointer<Float>,
        _ scores: UnsafeMutablePointer<Float>
    ) -> Int {
        fs_dot_rows(centroids, lists, dimension, vector, scores)
        var best = 0
        for l in 1..<lists where scores[l] > scores[best] { best = l }
        return best
    }

    /// Adds (or replaces) a face's row.
    public mutating func add(faceID: UUID, subjectID: UUID, vector: [Float]) {
        precondition(vector.count == dimension)
        vector.withUnsafeBufferPointer { v in
            add(faceID: faceID, subjectID: subjectID, vector: v.baseAddress!, list: nearestList(v.baseAddress!))
        }
    }

    /// Adds a row to a known list (bulk builds assign lists in parallel first).
    mutating func add(faceID: UUID, subjectID: UUID, vector: UnsafePointer<Float>, list: Int) {
        if faceTable.find(faceID, keys: faceIDs) != nil { remove(faceID: faceID) }
        let subject: Int32
        if let known = subjectTable.find(subjectID, keys: subjectIDs) {
            subject = Int32(known)
        } else {
            subject = Int32(subjectIDs.count)
            subjectIDs.append(subjectID)
            subjectTable.insert(UInt32(subject), keys: subjectIDs)
        }
        let ordinal: UInt32
        if let free = freeOrdinals.popLast() {
            ordinal = free
            faceIDs[Int(free)] = faceID
            faceSubjects[Int(free)] = subject
        } else {
            ordinal = UInt32(faceIDs.count)
            // The per-face columns grow by an eighth, not doubled (10M rows: 28 bytes each).
            if faceIDs.count == faceIDs.capacity {
                let target = faceIDs.count + faceIDs.count / 8 + 16
                faceIDs.reserveCapacity(target)
                faceSubjects.reserveCapacity(target)
                faceList.reserveCapacity(target)
                facePosition.reserveCapacity(target)
            }
            faceIDs.append(faceID)
            faceSubjects.append(subject)
            faceList.append(0)
            facePosition.append(0)
        }
        faceTable.insert(ordinal, keys: faceIDs)
        var peak: Float = 0
        let centre = list * dimension
        for i in 0..<dimension { peak = max(peak, abs(vector[i] - centroids[centre + i])) }
        let scale = peak > 0 ? peak / 127 : 1
        let inverse = 1 / scale
        lists[list].grow(by: 1, dimension: dimension)
        faceList[Int(ordinal)] = UInt32(list)
        facePosition[Int(ordinal)] = UInt32(lists[list].ordinals.count)
        lists[list].ordinals.append(ordinal)
        lists[list].scales.append(scale)
        for i in 0..<dimension {
            let step = max(-127, min(127, ((vector[i] - centroids[centre + i]) * inverse).rounded()))
            lists[list].codes.append(UInt8(Int(step) + 128))
        }
        count += 1
    }

    /// Removes a face by moving its list's last row into its place.
    @discardableResult
    public mutating func remove(faceID: UUID) -> Bool {
        guard let ordinal = faceTable.remove(faceID, keys: faceIDs) else { return false }
        let list = Int(faceList[Int(ordinal)])
        let position = Int(facePosition[Int(ordinal)])
        let last = lists[list].ordinals.count - 1
        if position != last {
            let moved = lists[list].ordinals[last]
            lists[list].ordinals[position] = moved
            lists[list].scales[position] = lists[list].scales[last]
            let d = dimension
            lists[list].codes.withUnsafeMutableBufferPointer { codes in
                for i in 0..<d { codes[position * d + i] = codes[last * d + i] }
            }
            facePosition[Int(moved)] = UInt32(position)
        }
        lists[list].ordinals.removeLast()
        lists[list].scales.removeLast()
        lists[list].codes.removeLast(dimension)
        faceList[Int(ordinal)] = .max
        freeOrdinals.append(ordinal)
        count -= 1
        return true
    }

    /// Removes every face of a subject; returns how many were removed.
    @discardableResult
    public mutating func remove(subjectID: UUID) -> Int {
        guard let subject = subjectTable.find(subjectID, keys: subjectIDs) else { return 0 }
        var faces: [UUID] = []
        for ordinal in faceSubjects.indices where faceSubjects[ordinal] == Int32(subject) && faceList[ordinal] != .max {
            faces.append(faceIDs[ordinal])
        }
        for face in faces { remove(faceID: face) }
        return faces.count
    }

    /// Every live row, dequantised into `into` (dimension floats), with its face and subject:
    /// what a retraining reads when the float rows are gone.
    func forEachRow(_ body: (UUID, UUID, UnsafePointer<Float>) -> Void) {
        var row = [Float](repeating: 0, count: dimension)
        row.withUnsafeMutableBufferPointer { row in
            for (l, list) in lists.enumerated() {
                list.codes.withUnsafeBufferPointer { codes in
                    for (p, ordinal) in list.ordinals.enumerated() {
                        let scale = list.scales[p]
                        for i in 0..<dimension {
                            row[i] = centroids[l * dimension + i] + Float(Int(codes[p * dimension + i]) - 128) * scale
                        }
                        body(faceIDs[Int(ordinal)], subjectIDs[Int(faceSubjects[Int(ordinal)])], row.baseAddress!)
                    }
                }
            }
        }
    }

    // MARK: - Search

    public func search(_ query: [Float], k: Int) -> [EmbeddingIndex.Match] { search(query, k: k, perFace: false) }

    /// The `k` best faces whatever their subjects (benchmarks measure face recall with it).
    public func searchFaces(_ query: [Float], k: Int) -> [EmbeddingIndex.Match] { search(query, k: k, perFace: true) }

    public func search(_ query: [Float], k: Int, perFace: Bool, probes: Int? = nil) -> [EmbeddingIndex.Match] {
        precondition(query.count == dimension)
        guard k > 0, count > 0 else { return [] }
        let d = dimension
        let lists = self.lists
        let probeCount = min(listCount, max(1, probes ?? self.probes))
        // Coarse: the query against every centroid, then the best `probeCount` lists.
        var coarse = [Float](repeating: 0, count: listCount)
        centroids.withUnsafeBufferPointer { c in
            query.withUnsafeBufferPointer { q in fs_dot_rows(c.baseAddress!, listCount, d, q.baseAddress!, &coarse) }
        }
        var order = Array(0..<listCount)
        if probeCount < listCount {
            order.withUnsafeMutableBufferPointer { order in
                Self.selectTop(order, scores: coarse, count: probeCount)
            }
        }
        let probed = order.prefix(probeCount).filter { !lists[$0].ordinals.isEmpty }
        let coarseScores = coarse
        // The 8-bit query: its own scale, and the constant the unsigned codes add.
        var peak: Float = 0
        for x in query { peak = max(peak, abs(x)) }
        let queryScale = peak > 0 ? peak / 127 : 1
        let q8 = query.map { Int8(max(-127, min(127, ($0 / queryScale).rounded()))) }
        let offset = 128 * q8.reduce(Int32(0)) { $0 + Int32($1) }
        let shortlist = max(candidates, k)
        let rows = probed.reduce(0) { $0 + lists[$1].ordinals.count }
        let parts = rows >= 32_768 ? min(ProcessInfo.processInfo.activeProcessorCount, probed.count) : 1
        let longest = probed.reduce(0) { max($0, lists[$1].ordinals.count) }
        var found = [SubjectTopK](repeating: SubjectTopK(capacity: shortlist), count: parts)
        faceSubjects.withUnsafeBufferPointer { subjects in
            q8.withUnsafeBufferPointer { q8 in
                nonisolated(unsafe) let subjects = subjects
                nonisolated(unsafe) let q8 = q8
                found.withUnsafeMutableBufferPointer { found in
                    nonisolated(unsafe) let found = found
                    let body: @Sendable (Int) -> Void = { part in
                        var top = SubjectTopK(capacity: shortlist)
                        var raw = [Int32](repeating: 0, count: longest)
                        raw.withUnsafeMutableBufferPointer { raw in
                            // Interleaved lists: the best-scored lists are spread over the parts.
                            var p = part
                            while p < probed.count {
                                let list = lists[probed[p]]
                                let base = coarseScores[probed[p]]
                                let n = list.ordinals.count
                                list.codes.withUnsafeBufferPointer { codes in
                                    fs_dot_u8s8_rows(codes.baseAddress!, n, d, q8.baseAddress!, raw.baseAddress!)
                                }
                                list.scales.withUnsafeBufferPointer { scales in
                                    list.ordinals.withUnsafeBufferPointer { ordinals in
                                        var floor = top.floor
                                        for i in 0..<n {
                                            let estimate = base + Float(raw[i] - offset) * queryScale * scales[i]
                                            guard estimate > floor else { continue }
                                            let ordinal = ordinals[i]
                                            top.offer(
                                                estimate, row: Int(ordinal),
                                                subject: perFace ? Int32(bitPattern: ordinal) : subjects[Int(ordinal)])
                                            floor = top.floor
                                        }
                                    }
                                }
                                p += parts
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
            }
        }
        var merged = SubjectTopK(capacity: shortlist)
        for part in found {
            for item in part.items { merged.offer(item.score, row: item.row, subject: item.subject) }
        }
        // Re-score the shortlist with the float query against each 8-bit row.
        var best = SubjectTopK(capacity: k)
        for item in merged.items {
            let l = Int(faceList[item.row])
            let list = lists[l]
            let position = Int(facePosition[item.row])
            let score = list.codes.withUnsafeBufferPointer { codes in
                var sum: Float = 0
                let base = position * d
                for i in 0..<d { sum += Float(Int(codes[base + i]) - 128) * query[i] }
                return coarse[l] + sum * list.scales[position]
            }
            best.offer(score, row: item.row, subject: item.subject)
        }
        return best.sortedDescending().map {
            EmbeddingIndex.Match(
                subjectID: subjectIDs[Int(faceSubjects[$0.row])], faceID: faceIDs[$0.row], similarity: $0.score)
        }
    }

    /// Moves the `count` highest-scored indices to the front (unordered), in linear time on average.
    static func selectTop(_ order: UnsafeMutableBufferPointer<Int>, scores: [Float], count: Int) {
        var low = 0
        var high = order.count - 1
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        while low < high {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let pivot = scores[order[low + Int((state >> 33) % UInt64(high - low + 1))]]
            var i = low
            var j = high
            while i <= j {
                while scores[order[i]] > pivot { i += 1 }
                while scores[order[j]] < pivot { j -= 1 }
                if i <= j {
                    order.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if count - 1 <= j {
                high = j
            } else if count - 1 >= i {
                low = i
            } else {
                return
            }
        }
    }
}

extension QuantizedIVFIndex.List {
    /// Room for `rows` more rows: capacity grows by an eighth (not doubled), so a list holds little
    /// slack and one growth copies one list.
    mutating func grow(by rows: Int, dimension: Int) {
        let needed = ordinals.count + rows
        guard needed > ordinals.capacity else { return }
        let target = max(needed, ordinals.count + ordinals.count / 8 + 16)
        codes.reserveCapacity(target * dimension)
        scales.reserveCapacity(target)
        ordinals.reserveCapacity(target)
    }
}
