import CVectorKernels
import FaceSearch
import Foundation

/// The FaceSearchTests checks, runnable without building the test product (which needs the
/// whole server): kernels against plain loops, the inverted file against the exact index, and the
/// same add / replace / remove semantics.
enum SelfCheck {
    nonisolated(unsafe) static var failures = 0

    static func expect(_ ok: Bool, _ what: String) {
        if !ok {
            failures += 1
            print("FAIL: \(what)")
        }
    }

    static func run() -> Bool {
        kernels()
        clusteredRecall()
        semantics()
        refinement()
        thresholdSwitch()
        print(failures == 0 ? "self-check: all passed" : "self-check: \(failures) failed")
        return failures == 0
    }

    static func kernels() {
        var random = SplitMix64(state: 5)
        for dimension in [16, 48, 64, 128, 144, 512, 1024] {
            let rows = 37
            let codes = (0..<(rows * dimension)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let query = (0..<dimension).map { _ in Int8(truncatingIfNeeded: random.next()) }
            for kernel in ["avx512vnni", "avx2", "portable"] {
                var out = [Int32](repeating: .min, count: rows)
                let status = fs_dot_u8s8_variant(kernel, codes, rows, dimension, query, &out)
                if status != 0 {
                    expect(kernel != "portable", "the portable kernel runs everywhere")
                    continue
                }
                for r in 0..<rows {
                    var sum: Int32 = 0
                    for i in 0..<dimension { sum += Int32(codes[r * dimension + i]) * Int32(query[i]) }
                    expect(out[r] == sum, "\(kernel) row \(r) of \(dimension)-d: \(out[r]) != \(sum)")
                }
            }
        }
        // Extremes: every code 255 and every query byte -128 stays exact in 32 bits.
        let codes = [UInt8](repeating: 255, count: 4 * 128)
        let query = [Int8](repeating: -128, count: 128)
        var out = [Int32](repeating: 0, count: 4)
        fs_dot_u8s8_rows(codes, 4, 128, query, &out)
        expect(out == [Int32](repeating: -255 * 128 * 128, count: 4), "extreme bytes")
    }

    /// Same subjects as exact, except that two whose exact similarities are within the 8-bit
    /// rounding (0.005) may trade places; every similarity within 0.005 of the exact one.
    static func agree(_ found: [EmbeddingIndex.Match], _ exact: [EmbeddingIndex.Match]) -> Bool {
        guard found.count == exact.count else { return false }
        let floor = (exact.last?.similarity ?? 0) + 0.005
        let got = Set(found.map(\.subjectID))
        for m in exact where m.similarity > floor && !got.contains(m.subjectID) { return false }
        for (a, b) in zip(found, exact) where abs(a.similarity - b.similarity) > 0.005 { return false }
        return true
    }

    /// A gallery of 300 identities in 30 families, with 1-12 faces each: the inverted file finds
    /// the exact top 10 subjects and faces, with similarities within 0.01 of the float ones.
    static func clusteredRecall() {
        let d = 128
        var random = SplitMix64(state: 17)
        var exact = EmbeddingIndex(dimension: d)
        var identities: [[Float]] = []
        let families = (0..<30).map { _ in random.gaussianUnitVector(d) }
        for s in 0..<300 {
            // Identities come in families of ten (look-alikes), as neighbours in a face gallery do.
            let centre = normalized(zip(families[s % 30], random.gaussianUnitVector(d)).map { $0 + 0.6 * $1 })
            identities.append(centre)
            for f in 0..<(1 + s % 12) {
                let face = normalized(zip(centre, random.gaussianUnitVector(d)).map { $0 + 0.5 * $1 })
                exact.add(faceID: uuid(s * 100 + f, 1), subjectID: uuid(s, 2), vector: face)
            }
        }
        let ivf = QuantizedIVFIndex.build(
            from: exact, training: .init(lists: 32), probes: 16, candidates: 64)
        expect(ivf.count == exact.count && ivf.subjectCount == 300, "ivf holds every row and subject")
        var subjectRecall = 0.0
        var faceRecall = 0.0
        var worst: Float = 0
        let queries = 50
        for q in 0..<queries {
            let query = normalized(zip(identities[q * 5], random.gaussianUnitVector(d)).map { $0 + 0.5 * $1 })
            let truth = exact.search(query, k: 10)
            let found = ivf.search(query, k: 10)
            subjectRecall += recall(found, truth, faces: false)
            faceRecall += recall(ivf.searchFaces(query, k: 10), exact.searchFaces(query, k: 10), faces: true)
            expect(found.first?.subjectID == truth.first?.subjectID, "query \(q): the same best subject")
            for (a, b) in zip(found, truth) where a.faceID == b.faceID {
                worst = max(worst, abs(a.similarity - b.similarity))
            }
        }
        expect(subjectRecall / Double(queries) >= 0.98, "subject recall@10 \(subjectRecall / Double(queries))")
        expect(faceRecall / Double(queries) >= 0.98, "face recall@10 \(faceRecall / Double(queries))")
        expect(worst < 0.01, "similarity error \(worst)")
        // Probing every list leaves only the 8-bit rounding: the same subjects as exact.
        for q in 0..<10 {
            let query = random.gaussianUnitVector(d)
            let truth = exact.search(query, k: 5).map(\.subjectID)
            let found = ivf.search(query, k: 5, perFace: false, probes: ivf.listCount).map(\.subjectID)
            expect(Set(found).intersection(truth).count >= 4, "all lists, query \(q)")
        }
    }

    /// Add, replace, remove a face, remove a subject: the same answers as the exact index.
    static func semantics() {
        let d = 128
        var random = SplitMix64(state: 23)
        var ivf = QuantizedIVFIndex(
            centroids: (0..<4).flatMap { _ in random.gaussianUnitVector(d) }, dimension: d, trainedRows: 0, probes: 4,
            candidates: 16)
        var exact = EmbeddingIndex(dimension: d)
        let vectors = (0..<60).map { _ in random.gaussianUnitVector(d) }
        for (i, v) in vectors.enumerated() {
            ivf.add(faceID: uuid(i, 1), subjectID: uuid(i % 7, 2), vector: v)
            exact.add(faceID: uuid(i, 1), subjectID: uuid(i % 7, 2), vector: v)
        }
        func same(_ label: String) {
            expect(ivf.count == exact.count, "\(label): count \(ivf.count) vs \(exact.count)")
            expect(ivf.subjectCount == exact.subjectCount, "\(label): subjects")
            for v in vectors.prefix(20) {
                let a = ivf.search(v, k: 3)
                let b = exact.search(v, k: 3)
                expect(agree(a, b), "\(label): subjects of a query \(a.map(\.similarity)) vs \(b.map(\.similarity))")
                expect(a.first?.faceID == b.first?.faceID, "\(label): best face of a query")
            }
        }
        same("after adds")
        // Replacing a face moves it (and only it) to the new vector.
        let moved = random.gaussianUnitVector(d)
        ivf.add(faceID: uuid(3, 1), subjectID: uuid(3, 2), vector: moved)
        exact.add(faceID: uuid(3, 1), subjectID: uuid(3, 2), vector: moved)
        expect(ivf.search(moved, k: 1).first?.faceID == uuid(3, 1), "replaced face answers for its new vector")
        same("after a replace")
        expect(ivf.remove(faceID: uuid(10, 1)) && exact.remove(faceID: uuid(10, 1)), "remove a face")
        expect(!ivf.remove(faceID: uuid(10, 1)), "a removed face is gone")
        expect(!ivf.remove(faceID: uuid(999, 1)), "an unknown face")
        same("after a remove")
        let erased = ivf.remove(subjectID: uuid(2, 2))
        expect(erased == exact.remove(subjectID: uuid(2, 2)) && erased > 0, "remove a subject: \(erased)")
        expect(ivf.remove(subjectID: uuid(2, 2)) == 0, "a removed subject has no faces")
        expect(!ivf.search(vectors[2], k: 10).contains { $0.subjectID == uuid(2, 2) }, "erased subject never found")
        same("after a subject removal")
        // Freed ordinals are reused and the table keeps answering.
        for i in 100..<140 {
            let v = random.gaussianUnitVector(d)
            ivf.add(faceID: uuid(i, 1), subjectID: uuid(i, 2), vector: v)
            exact.add(faceID: uuid(i, 1), subjectID: uuid(i, 2), vector: v)
        }
        for i in stride(from: 0, to: 140, by: 3) {
            expect(ivf.remove(faceID: uuid(i, 1)) == exact.remove(faceID: uuid(i, 1)), "remove \(i)")
        }
        same("after churn")
        expect(ivf.search(vectors[0], k: 0).isEmpty, "k 0")
    }

    /// Two refinement planes cut the rounding left in a similarity about 4x, one about 2x.
    static func refinement() {
        let d = 128
        var random = SplitMix64(state: 41)
        var exact = EmbeddingIndex(dimension: d)
        for f in 0..<3000 {
            exact.add(faceID: uuid(f, 1), subjectID: uuid(f / 3, 2), vector: random.gaussianUnitVector(d))
        }
        var ivf = QuantizedIVFIndex.build(
            from: exact, training: .init(lists: 16), probes: 16, candidates: 64, refinementBits: 2)
        let queries = (0..<40).map { _ in random.gaussianUnitVector(d) }
        func worstError() -> Float {
            var worst: Float = 0
            for q in queries {
                let truth = Dictionary(
                    uniqueKeysWithValues: exact.searchFaces(q, k: 20).map { ($0.faceID, $0.similarity) })
                for m in ivf.searchFaces(q, k: 20) {
                    if let e = truth[m.faceID] { worst = max(worst, abs(e - m.similarity)) }
                }
            }
            return worst
        }
        let two = worstError()
        ivf.dropRefinementPlane()
        let one = worstError()
        ivf.dropRefinementPlane()
        let none = worstError()
        print("refinement: largest similarity error with 0/1/2 planes \(none) / \(one) / \(two)")
        expect(none > 0 && one < none * 0.7 && two < none * 0.4, "refinement planes: \(none) \(one) \(two)")
    }

    /// The shared index switches to the inverted file at the threshold, keeping the answers.
    static func thresholdSwitch() {
        let d = 128
        var random = SplitMix64(state: 31)
        let index = FaceIndex(dimension: d, policy: .init(approximateFrom: 2000, probes: 16, lists: 16))
        var vectors: [[Float]] = []
        for i in 0..<1999 {
            let v = random.gaussianUnitVector(d)
            vectors.append(v)
            index.add(faceID: uuid(i, 1), subjectID: uuid(i / 2, 2), vector: v)
        }
        expect(!index.isApproximate && !index.isRebuilding, "exact below the threshold")
        index.add(faceID: uuid(1999, 1), subjectID: uuid(999, 2), vector: random.gaussianUnitVector(d))
        // Writes during the rebuild are replayed onto it.
        index.remove(faceID: uuid(0, 1))
        index.add(faceID: uuid(5000, 1), subjectID: uuid(5000, 2), vector: vectors[0])
        index.waitForRebuild()
        expect(index.isApproximate && !index.isRebuilding, "the inverted file from the threshold on")
        expect(index.count == 2000, "count after the switch \(index.count)")
        expect(index.search(vectors[0], k: 1).first?.faceID == uuid(5000, 1), "a write made during the rebuild")
        expect(index.search(vectors[7], k: 1).first?.faceID == uuid(7, 1), "an old row")
        expect(index.remove(subjectID: uuid(3, 2)) == 2, "subject removal after the switch")
        let exactOnly = FaceIndex(dimension: d, policy: .exactOnly)
        exactOnly.add(faceID: uuid(1, 1), subjectID: uuid(1, 2), vector: vectors[1])
        expect(!exactOnly.isApproximate && exactOnly.search(vectors[1], k: 1).first?.faceID == uuid(1, 1), "exact only")
    }
}
