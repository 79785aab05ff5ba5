import CVectorKernels
import Crypto
import Foundation
import Testing
import Vapor

@testable import FaceSearch
@testable import FaceSocialServer

@Suite("Embedding index and data cipher")
struct EmbeddingIndexTests {
    static func vector(_ seed: inout UInt64, _ dimension: Int = 128) -> [Float] {
        var v = (0..<dimension).map { _ -> Float in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: seed >> 11) % 1000) / 1000
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in v.indices { v[i] /= norm }
        return v
    }

    /// The SIMD search, split across cores, agrees with a plain loop on which subjects are best.
    @Test(arguments: [10, 1000, 40_000])
    func searchMatchesBruteForce(rows: Int) {
        var seed: UInt64 = UInt64(rows)
        var index = EmbeddingIndex(dimension: 128)
        var vectors: [(UUID, UUID, [Float])] = []
        let subjects = (0..<max(1, rows / 3)).map { _ in UUID() }
        for i in 0..<rows {
            let entry = (UUID(), subjects[i % subjects.count], Self.vector(&seed))
            vectors.append(entry)
            index.add(faceID: entry.0, subjectID: entry.1, vector: entry.2)
        }
        for _ in 0..<5 {
            let query = Self.vector(&seed)
            var best: [UUID: Float] = [:]
            for (_, subject, v) in vectors {
                let dot = zip(v, query).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                best[subject] = max(best[subject] ?? -2, dot)
            }
            let expected = best.sorted { $0.value > $1.value }.prefix(5)
            let found = index.search(query, k: 5)
            #expect(found.map(\.subjectID) == expected.map(\.key))
            for (f, e) in zip(found, expected) { #expect(abs(f.similarity - e.value) < 1e-4) }
        }
    }

    @Test func removeKeepsRowsConsistent() {
        var seed: UInt64 = 7
        var index = EmbeddingIndex(dimension: 128)
        let a = UUID()
        let b = UUID()
        let faceA = UUID()
        let faceB1 = UUID()
        let faceB2 = UUID()
        let va = Self.vector(&seed)
        let vb1 = Self.vector(&seed)
        let vb2 = Self.vector(&seed)
        index.add(faceID: faceA, subjectID: a, vector: va)
        index.add(faceID: faceB1, subjectID: b, vector: vb1)
        index.add(faceID: faceB2, subjectID: b, vector: vb2)
        #expect(index.search(va, k: 1).first?.subjectID == a)
        let removed = index.remove(faceID: faceA)
        #expect(removed)
        #expect(index.count == 2)
        // The moved row still answers for its own face.
        #expect(index.search(vb2, k: 1).first?.faceID == faceB2)
        let removedRows = index.remove(subjectID: b)
        #expect(removedRows == 2)
        #expect(index.count == 0 && index.search(vb1, k: 3).isEmpty)
    }

    /// Every kernel this CPU can run agrees with a plain loop, for 128-d and other multiples of 16.
    @Test(arguments: ["avx512f", "avx2+fma", "portable"])
    func kernelsAgreeWithAPlainLoop(kernel: String) throws {
        var seed: UInt64 = 11
        for dimension in [16, 48, 128, 512] {
            let rows = 37
            let matrix = (0..<rows).flatMap { _ in Self.vector(&seed, dimension) }
            let query = Self.vector(&seed, dimension)
            var out = [Float](repeating: .nan, count: rows)
            let status = fs_dot_rows_variant(kernel, matrix, rows, dimension, query, &out)
            try #require(status == 0 || kernel != "portable", "the portable kernel runs everywhere")
            guard status == 0 else { continue }  // this CPU lacks the instruction set
            for r in 0..<rows {
                let expected = (0..<dimension).reduce(Float(0)) { $0 + matrix[r * dimension + $1] * query[$1] }
                #expect(abs(out[r] - expected) < 1e-5, "\(kernel) row \(r) of \(dimension)-d")
            }
        }
    }

    @Test func heapKeepsTheBestKSubjects() {
        var heap = SubjectTopK(capacity: 3)
        for (i, s) in [0.1, 0.9, 0.3, 0.8, 0.2, 0.95].enumerated() { heap.offer(Float(s), row: i, subject: Int32(i)) }
        #expect(heap.sortedDescending().map(\.row) == [5, 1, 3])
        // A held subject's better row replaces its old one instead of taking a second place.
        heap.offer(0.99, row: 6, subject: 3)
        #expect(heap.sortedDescending().map(\.row) == [6, 5, 1])
        heap.offer(0.5, row: 7, subject: 5)  // subject 5 already holds 0.95
        #expect(heap.sortedDescending().map(\.row) == [6, 5, 1])
        #expect(heap.floor == 0.9)
    }

    /// Galleries sorted from worst to best make every row beat the root; the answer stays right.
    @Test func ascendingScoresStillGiveTheBestSubjects() {
        var index = EmbeddingIndex(dimension: 16)
        let subjects = (0..<4).map { _ in UUID() }
        for i in 0..<200 {
            let t = Float(i) / 200
            var v = [Float](repeating: 0, count: 16)
            v[0] = t
            v[1] = (1 - t * t).squareRoot()
            index.add(faceID: UUID(), subjectID: subjects[i % 4], vector: v)
        }
        var query = [Float](repeating: 0, count: 16)
        query[0] = 1
        let found = index.search(query, k: 3)
        #expect(found.map(\.subjectID) == [subjects[3], subjects[2], subjects[1]])
        #expect(abs(found[0].similarity - 199 / 200) < 1e-6)
    }

    @Test func cipherRoundTripsAndBindsRowAndKey() throws {
        let key = SymmetricKey(size: .bits256)
        let cipher = DataCipher(currentKeyID: "k1", current: key)
        let values: [Float] = [0.25, -1.5, 3.0, .pi]
        let (sealed, keyID) = try cipher.sealEmbedding(values, context: "face:a")
        #expect(keyID == "k1")
        #expect(try cipher.openEmbedding(sealed, keyID: "k1", context: "face:a") == values)
        // Another row's context, an unknown key id, or a flipped bit all fail.
        #expect(throws: DataCipher.Failure.self) { try cipher.openEmbedding(sealed, keyID: "k1", context: "face:b") }
        #expect(throws: DataCipher.Failure.unknownKey("k0")) {
            try cipher.openEmbedding(sealed, keyID: "k0", context: "face:a")
        }
        var tampered = sealed
        tampered[tampered.startIndex + 14] ^= 1
        #expect(throws: DataCipher.Failure.self) { try cipher.openEmbedding(tampered, keyID: "k1", context: "face:a") }
        // A rotated ring opens old rows and seals new ones under the new key.
        let rotated = DataCipher(currentKeyID: "k2", current: SymmetricKey(size: .bits256), retired: ["k1": key])
        #expect(try rotated.openEmbedding(sealed, keyID: "k1", context: "face:a") == values)
        #expect(try rotated.sealEmbedding(values, context: "face:a").keyID == "k2")
    }

    @Test func productionRefusesMissingOrBadDataKeys() async throws {
        let base = [
            "FACESOCIAL_PROFILE": "production", "JWT_SECRET_KEY": String(repeating: "s", count: 40),
        ]
        #expect(throws: ConfigError.insecureDefault(variable: "FACESOCIAL_DATA_KEY")) {
            try AppConfig.fromEnvironment(base)
        }
        let key = Data(repeating: 7, count: 32).base64EncodedString()
        var env = base
        env["FACESOCIAL_DATA_KEY"] = key
        #expect(try AppConfig.fromEnvironment(env).dataKey == key)
        env["FACESOCIAL_DATA_KEYS_OLD"] = "old:short"
        #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment(env) }
        env["FACESOCIAL_DATA_KEYS_OLD"] = "nocolon"
        #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment(env) }
        env["FACESOCIAL_DATA_KEYS_OLD"] = nil
        env["DATABASE_REPLICA_URLS"] = "postgres://u@h/db"
        let config = try AppConfig.fromEnvironment(env)
        let app = try await Application.make(.testing)
        // Replicas of an SQLite file make no sense: refused at start.
        #expect(throws: ConfigError.self) { try DatabaseSetup.configure(app, config: config) }
        try await app.asyncShutdown()
    }
}
