import Foundation

/// How identify scores a subject: by its best face, or by its template (the normalised mean of
/// all its faces' unit rows), which an outlier face of the subject moves less.
public enum MatchMode: String, Sendable, CaseIterable {
    case best, template
}

/// Template scoring over the rows an index already holds (no second index, no extra memory): the
/// best-face search proposes `candidateCount(k)` subjects, each is re-scored by its template, and
/// the best `k` are kept. A subject whose template is near the query has faces near it, so the
/// candidates hold it unless more than that many subjects have a closer single face.
public enum SubjectTemplates {
    /// Subjects proposed per template search.
    public static func candidateCount(_ k: Int) -> Int { max(4 * k, 32) }

    /// The normalised mean of unit rows (nil for none).
    public static func template(_ rows: [[Float]]) -> [Float]? {
        guard let first = rows.first else { return nil }
        var sum = [Float](repeating: 0, count: first.count)
        for row in rows {
            for i in sum.indices { sum[i] += row[i] }
        }
        let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else { return nil }
        return sum.map { $0 / norm }
    }

    /// Re-scores best-face matches by each subject's template over `rows` (a subject's unit rows),
    /// best first, the `k` best. A match keeps its best face's id for reference.
    public static func rerank(
        _ matches: [EmbeddingIndex.Match], query: [Float], rows: [UUID: [[Float]]], k: Int
    ) -> [EmbeddingIndex.Match] {
        var scored: [EmbeddingIndex.Match] = []
        for match in matches {
            guard let template = template(rows[match.subjectID] ?? []) else { continue }
            var similarity: Float = 0
            for i in template.indices { similarity += template[i] * query[i] }
            scored.append(
                EmbeddingIndex.Match(subjectID: match.subjectID, faceID: match.faceID, similarity: similarity))
        }
        scored.sort { $0.similarity > $1.similarity }
        return Array(scored.prefix(k))
    }
}

extension EmbeddingIndex {
    /// The unit rows of each of `subjects` (one pass over the subject column, a flag per subject).
    public func rows(of subjects: Set<UUID>) -> [UUID: [[Float]]] {
        var wanted = [Bool](repeating: false, count: subjectIDs.count)
        for id in subjects {
            if let ordinal = subjectOrdinal[id] { wanted[Int(ordinal)] = true }
        }
        var found: [UUID: [[Float]]] = [:]
        for (row, ordinal) in rowSubjects.enumerated() where wanted[Int(ordinal)] {
            found[subjectIDs[Int(ordinal)], default: []].append(
                Array(vectors[(row * dimension)..<((row + 1) * dimension)]))
        }
        return found
    }
}

extension QuantizedIVFIndex {
    /// The rows of each of `subjects`, dequantised with their refinement (one pass over the
    /// subject column with a flag per subject, then one over each found row's list for its place).
    public func rows(of subjects: Set<UUID>) -> [UUID: [[Float]]] {
        var wanted = [Bool](repeating: false, count: subjectIDs.count)
        for id in subjects {
            if let ordinal = subjectOrdinal(id) { wanted[Int(ordinal)] = true }
        }
        var found: [UUID: [[Float]]] = [:]
        for (ordinal, subject) in faceSubjects.enumerated() where wanted[Int(subject)] {
            guard let row = row(ordinal: UInt32(ordinal)) else { continue }
            found[subjectIDs[Int(subject)], default: []].append(row)
        }
        return found
    }
}

extension FaceIndex {
    /// The `k` best subjects for a normalised query by `mode`, best first.
    public func search(_ query: [Float], k: Int, mode: MatchMode) -> [EmbeddingIndex.Match] {
        switch mode {
        case .best:
            return search(query, k: k)
        case .template:
            return reading {
                switch storage {
                case .exact(let index): Self.templateSearch(index, query, k: k)
                case .approximate(let index): Self.templateSearch(index, query, k: k)
                }
            }
        }
    }

    /// The best-face candidates re-scored by their templates, on either kind of index.
    static func templateSearch(_ index: some FaceRows, _ query: [Float], k: Int) -> [EmbeddingIndex.Match] {
        let matches = index.search(query, k: SubjectTemplates.candidateCount(k))
        return SubjectTemplates.rerank(matches, query: query, rows: index.rows(of: Set(matches.map(\.subjectID))), k: k)
    }
}
