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
/// - Each row also keeps `refinementBits` (0, 1 or 2) bit planes of what the 8-bit step rounded
///   away: plane 1 says on which side of the step the value lay, plane 2 in which half of that
///   side. The scan never reads them; the re-score does, which cuts the rounding left in a
///   returned similarity by 2x (one plane) or 4x (two), for 16 bytes a row each.
/// - A search scores the query against every centroid, scans the best `probes` lists with the
///   8-bit kernel (split across cores), adds the list's centroid score, keeps the best `candidates`
///   subjects and the best `4 * candidates` faces by that estimate, and re-scores each of those
///   rows with the float query against the refined row before the final top k (per subject: its
///   best re-scored face, so a subject is not judged by the face the 8-bit estimate preferred).
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
    /// Subjects kept by the 8-bit estimate and re-scored (and four times as many faces).
    public var candidates: Int
    /// Bit planes of refinement a row keeps (0, 1 or 2); see the type's comment.
    public private(set) var refinementBits: Int

    struct List: Sendable {
        var codes: [UInt8] = []
        /// `refinementBits * dimension / 8` bytes a row: plane 1's bytes, then plane 2's.
        var refinement: [UInt8] = []
        var scales: [Float] = []
        var ordinals: [UInt32] = []
    }
    private(set) var lists: [List]
    // Per face ordinal; a free ordinal has `faceList == .max`. A row's place in its list is not
    // kept (4 bytes a face): a search carries it from the scan, a removal looks it up in the list.
    private(set) var faceIDs: [UUID] = []
    private(set) var faceSubjects: [Int32] = []
    private var faceList: [UInt16] = []
    private var freeOrdinals: [UInt32] = []
    private var faceTable = OrdinalTable()
    private(set) var subjectIDs: [UUID] = []
    private var subjectTable = OrdinalTable()
    public private(set) var count = 0

    public init(
        centroids: [Float], dimension: Int, trainedRows: Int, probes: Int, candidates: Int,
        refinementBits: Int = QuantizedIVFIndex.defaultRefinementBits
    ) {
        precondition(dimension > 0 && dimension % 16 == 0 && centroids.count % dimension == 0 && !centroids.isEmpty)
        precondition(centroids.count / dimension < Int(UInt16.max), "list numbers are kept in 16 bits")
        precondition((0...2).contains(refinementBits))
        self.dimension = dimension
        self.centroids = centroids
        self.trainedRows = trainedRows
        self.probes = probes
        self.candidates = candidates
        self.refinementBits = refinementBits
        lists = [List](repeating: List(), count: centroids.count / dimension)
    }

    /// One plane: at 10M realistic rows recall@10 0.990 in 1,874 MB (none: 0.982 in 1,713 MB; two:
    /// 0.994 in 2,034 MB), docs/benchmarks.md "Large galleries".
    public static let defaultRefinementBits = 1

    /// Bytes of refinement a row keeps.
    var refinementBytes: Int { refinementBits * dimension / 8 }

    /// Drops the last refinement plane of every row (the benchmark measures each plane count on
    /// one build; the memory it reports is then what that count really holds).
    public mutating func dropRefinementPlane() {
        guard refinementBits > 0 else { return }
        let plane = dimension / 8
        let kept = (refinementBits - 1) * plane
        for l in lists.indices {
            let rows = lists[l].ordinals.count
            var refinement: [UInt8] = []
            refinement.reserveCapacity(lists[l].ordinals.capacity * kept)
            for r in 0..<rows {
                refinement.append(contentsOf: lists[l].refinement[(r * refinementBytes)..<(r * refinementBytes + kept)])
            }
            lists[l].refinement = refinement
        }
        refinementBits -= 1
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

    /// Bytes held, by capacity: codes, refinement, scales, ordinals, per-face ids and lists, both tables.
    public var memoryBytes: Int {
        var bytes = centroids.capacity * 4 + lists.capacity * MemoryLayout<List>.stride
        for list in lists {
            bytes +=
                list.codes.capacity + list.refinement.capacity + list.scales.capacity * 4 + list.ordinals.capacity * 4
        }
        bytes += faceIDs.capacity * 16 + faceSubjects.capacity * 4 + faceList.capacity * 2
        bytes += freeOrdinals.capacity * 4 + faceTable.memoryBytes + subjectIDs.capacity * 16 + subjectTable.memoryBytes
        return bytes
    }

    /// The rows of the longest and shortest non-empty list (the benchmark reports the balance).
    public var listSizes: [Int] { lists.map(\.ordinals.count) }

    public mutating func reserve(faces: Int, subjects: Int, listRows: [Int]? = nil) {
        faceIDs.reserveCapacity(faces)
        faceSubjects.reserveCapacity(faces)
        faceList.reserveCapacity(faces)
        subjectIDs.reserveCapacity(subjects)
        if faceTable.count == 0 { faceTable = OrdinalTable(capacity: faces) }
        if subjectTable.count == 0 { subjectTable = OrdinalTable(capacity: subjects) }
        if let listRows {
            for (l, rows) in listRows.enumerated() {
                lists[l].codes.reserveCapacity(rows * dimension)
                lists[l].refinement.reserveCapacity(rows * refinementBytes)
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
            // The per-face columns grow by an eighth, not doubled (10M rows: 22 bytes each).
            if faceIDs.count == faceIDs.capacity {
                let target = faceIDs.count + faceIDs.count / 8 + 16
                faceIDs.reserveCapacity(target)
                faceSubjects.reserveCapacity(target)
                faceList.reserveCapacity(target)
            }
            faceIDs.append(faceID)
            faceSubjects.append(subject)
            faceList.append(0)
        }
        faceTable.insert(ordinal, keys: faceIDs)
        var peak: Float = 0
        let centre = list * dimension
        for i in 0..<dimension { peak = max(peak, abs(vector[i] - centroids[centre + i])) }
        let scale = peak > 0 ? peak / 127 : 1
        let inverse = 1 / scale
        lists[list].grow(by: 1, dimension: dimension, refinementBytes: refinementBytes)
        faceList[Int(ordinal)] = UInt16(list)
        lists[list].ordinals.append(ordinal)
        lists[list].scales.append(scale)
        let planeBytes = dimension / 8
        var planes = [UInt8](repeating: 0, count: 2 * planeBytes)
        for i in 0..<dimension {
            let exact = (vector[i] - centroids[centre + i]) * inverse
            let step = max(-127, min(127, exact.rounded()))
            lists[list].codes.append(UInt8(Int(step) + 128))
            // What the step rounded away, in [-1/2, 1/2] of a step: its side, then its half.
            let rest = exact - step
            if rest >= 0 { planes[i / 8] |= 1 << (i % 8) }
            if abs(rest) >= 0.25 { planes[planeBytes + i / 8] |= 1 << (i % 8) }
        }
        lists[list].refinement.append(contentsOf: planes.prefix(refinementBytes))
        count += 1
    }

    /// A row's value in steps: its 8-bit code plus what its refinement planes restore.
    @inline(__always)
    static func steps(code: UInt8, refinement: UnsafePointer<UInt8>, planeBytes: Int, bits: Int, at i: Int) -> Float {
        let value = Float(Int(code) - 128)
        guard bits > 0 else { return value }
        let positive = refinement[i / 8] & (1 << (i % 8)) != 0
        let magnitude: Float
        if bits == 1 {
            magnitude = 0.25
        } else {
            magnitude = refinement[planeBytes + i / 8] & (1 << (i % 8)) != 0 ? 0.375 : 0.125
        }
        return positive ? value + magnitude : value - magnitude
    }

    /// A row's similarity to the float query: the list's centroid score plus the refined residual's.
    func rescore(list l: Int, position: Int, query: UnsafePointer<Float>, centroidScore: Float) -> Float {
        let d = dimension
        let bits = refinementBits
        let planeBytes = d / 8
        let refinementBytes = self.refinementBytes
        let list = lists[l]
        return list.codes.withUnsafeBufferPointer { codes in
            list.refinement.withUnsafeBufferPointer { refinement in
                let code = codes.baseAddress! + position * d
                // An empty array's base address may be nil; with no planes nothing is read.
                let planes = refinement.baseAddress.map { $0 + position * refinementBytes } ?? UnsafePointer(code)
                var sum: Float = 0
                for i in 0..<d {
                    sum +=
                        Self.steps(code: code[i], refinement: planes, planeBytes: planeBytes, bits: bits, at: i)
                        * query[i]
                }
                return centroidScore + sum * list.scales[position]
            }
        }
    }

    /// A subject's ordinal, if it has one.
    func subjectOrdinal(_ id: UUID) -> UInt32? { subjectTable.find(id, keys: subjectIDs) }

    /// A live face's row, dequantised with its refinement (nil for a free ordinal).
    func row(ordinal: UInt32) -> [Float]? {
        let l = Int(faceList[Int(ordinal)])
        guard l != Int(UInt16.max), let position = lists[l].ordinals.firstIndex(of: ordinal) else { return nil }
        var row = [Float](repeating: 0, count: dimension)
        row.withUnsafeMutableBufferPointer { dequantise(list: l, position: position, into: $0.baseAddress!) }
        return row
    }

    /// The row at a place: its list's centroid plus its refined steps times its scale.
    func dequantise(list l: Int, position: Int, into row: UnsafeMutablePointer<Float>) {
        let d = dimension
        let list = lists[l]
        let bits = refinementBits
        let refinementBytes = self.refinementBytes
        list.codes.withUnsafeBufferPointer { codes in
            list.refinement.withUnsafeBufferPointer { refinement in
                let code = codes.baseAddress! + position * d
                // An empty array's base address may be nil; with no planes nothing is read.
                let planes = refinement.baseAddress.map { $0 + position * refinementBytes } ?? UnsafePointer(code)
                let scale = list.scales[position]
                for i in 0..<d {
                    row[i] =
                        centroids[l * d + i]
                        + Self.steps(code: code[i], refinement: planes, planeBytes: d / 8, bits: bits, at: i) * scale
                }
            }
        }
    }

    /// Removes a face by moving its list's last row into its place.
    @discardableResult
    public mutating func remove(faceID: UUID) -> Bool {
        guard let ordinal = faceTable.remove(faceID, keys: faceIDs) else { return false }
        let list = Int(faceList[Int(ordinal)])
        // The row's place: one pass over its list's ordinals (about 2,400 at 10M rows).
        let position = lists[list].ordinals.firstIndex(of: ordinal)!
        let last = lists[list].ordinals.count - 1
        if position != last {
            lists[list].ordinals[position] = lists[list].ordinals[last]
            lists[list].scales[position] = lists[list].scales[last]
            let d = dimension
            lists[list].codes.withUnsafeMutableBufferPointer { codes in
                for i in 0..<d { codes[position * d + i] = codes[last * d + i] }
            }
            let r = refinementBytes
            lists[list].refinement.withUnsafeMutableBufferPointer { refinement in
                for i in 0..<r { refinement[position * r + i] = refinement[last * r + i] }
            }
        }
        lists[list].ordinals.removeLast()
        lists[list].scales.removeLast()
        lists[list].codes.removeLast(dimension)
        lists[list].refinement.removeLast(refinementBytes)
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

    /// Every live row, dequantised (with its refinement) into `dimension` floats, with its face and
    /// subject: what a retraining reads when the float rows are gone.
    func forEachRow(_ body: (UUID, UUID, UnsafePointer<Float>) -> Void) {
        var row = [Float](repeating: 0, count: dimension)
        row.withUnsafeMutableBufferPointer { row in
            for (l, list) in lists.enumerated() {
                for (p, ordinal) in list.ordinals.enumerated() {
                    dequantise(list: l, position: p, into: row.baseAddress!)
                    body(faceIDs[Int(ordinal)], subjectIDs[Int(faceSubjects[Int(ordinal)])], row.baseAddress!)
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
        // Two shortlists from the scan: the best `shortlist` subjects (each by the face the estimate
        // prefers) and the best `4 * shortlist` faces whatever their subjects, so that a subject's
        // other faces near the top are re-scored too. A row is kept as its list and place.
        let shortlist = max(candidates, k)
        let rows = probed.reduce(0) { $0 + lists[$1].ordinals.count }
        let parts = rows >= 32_768 ? min(ProcessInfo.processInfo.activeProcessorCount, probed.count) : 1
        let longest = probed.reduce(0) { max($0, lists[$1].ordinals.count) }
        var found = [Shortlists](repeating: Shortlists(subjects: shortlist, faces: 4 * shortlist), count: parts)
        faceSubjects.withUnsafeBufferPointer { subjects in
            q8.withUnsafeBufferPointer { q8 in
                nonisolated(unsafe) let subjects = subjects
                nonisolated(unsafe) let q8 = q8
                found.withUnsafeMutableBufferPointer { found in
                    nonisolated(unsafe) let found = found
                    let body: @Sendable (Int) -> Void = { part in
                        var top = Shortlists(subjects: shortlist, faces: 4 * shortlist)
                        var raw = [Int32](repeating: 0, count: longest)
                        raw.withUnsafeMutableBufferPointer { raw in
                            // Interleaved lists: the best-scored lists are spread over the parts.
                            var p = part
                            while p < probed.count {
                                let l = probed[p]
                                let list = lists[l]
                                let base = coarseScores[l]
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
                                                estimate, place: l << 32 | i,
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
        // Re-score both shortlists' rows (each once) with the float query against the refined rows.
        var places = Set<Int>()
        for part in found {
            for item in part.subjects.items { places.insert(item.row) }
            for item in part.faces.items { places.insert(item.row) }
        }
        var best = SubjectTopK(capacity: k)
        query.withUnsafeBufferPointer { q in
            for place in places {
                let l = place >> 32
                let position = place & 0xFFFF_FFFF
                let ordinal = Int(lists[l].ordinals[position])
                let score = rescore(list: l, position: position, query: q.baseAddress!, centroidScore: coarse[l])
                best.offer(
                    score, row: ordinal, subject: perFace ? Int32(truncatingIfNeeded: ordinal) : faceSubjects[ordinal])
            }
        }
        return best.sortedDescending().map {
            EmbeddingIndex.Match(
                subjectID: subjectIDs[Int(faceSubjects[$0.row])], faceID: faceIDs[$0.row], similarity: $0.score)
        }
    }

    /// The scan's two shortlists: subjects (each by its best-estimated face) and faces.
    struct Shortlists {
        var subjects: SubjectTopK
        var faces: SubjectTopK

        init(subjects: Int, faces: Int) {
            self.subjects = SubjectTopK(capacity: subjects)
            self.faces = SubjectTopK(capacity: faces)
        }

        /// Below both floors a row can enter neither.
        var floor: Float { min(subjects.floor, faces.floor) }

        mutating func offer(_ estimate: Float, place: Int, subject: Int32) {
            if estimate > subjects.floor { subjects.offer(estimate, row: place, subject: subject) }
            if estimate > faces.floor { faces.offerDistinct(estimate, row: place) }
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
    mutating func grow(by rows: Int, dimension: Int, refinementBytes: Int) {
        let needed = ordinals.count + rows
        guard needed > ordinals.capacity else { return }
        let target = max(needed, ordinals.count + ordinals.count / 8 + 16)
        codes.reserveCapacity(target * dimension)
        refinement.reserveCapacity(target * refinementBytes)
        scales.reserveCapacity(target)
        ordinals.reserveCapacity(target)
    }
}
