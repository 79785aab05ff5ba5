import ArgumentParser
import FaceKit
import FaceSearch
import FaceSocialServer
import Foundation

extension BenchCommand {
    /// Times the identify search alone (no detection, no database) on synthetic normalised
    /// vectors; bench/search_baseline.py runs numpy and FAISS on the same sizes.
    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "p50/p99 of a top-k search over synthetic 128-d galleries (docs/benchmarks.md).")
        @Option(help: "Comma-separated gallery sizes.") var rows = "100000,1000000"
        @Option(help: "Timed queries per size.") var queries = 200
        @Option(help: "Results per query.") var k = 10
        @Option(help: "Dimension (a multiple of 16).") var dimension = 128
        @Option(help: "Random seed.") var seed: UInt64 = 42

        func run() async throws {
            let sizes = rows.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }) else { throw ValidationError("--rows: sizes > 0") }
            print(
                "search: dimension \(dimension), k \(k), \(queries) queries, "
                    + "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(EmbeddingIndex.kernel) kernel")
            var table: [[String]] = []
            for size in sizes {
                var random = SplitMix64(seed: seed &+ UInt64(size))
                var index = EmbeddingIndex(dimension: dimension)
                index.reserve(size)
                // Every row its own subject, as in a gallery of one face per person.
                for _ in 0..<size {
                    index.add(faceID: UUID(), subjectID: UUID(), vector: random.unitVector(dimension))
                }
                let queryVectors = (0..<queries).map { _ in random.unitVector(dimension) }
                for query in queryVectors.prefix(5) { _ = index.search(query, k: k) }  // warm-up
                var samples: [Double] = []
                var checksum: Float = 0
                for query in queryVectors {
                    let start = ContinuousClock.now
                    let matches = index.search(query, k: k)
                    samples.append((ContinuousClock.now - start).milliseconds)
                    checksum += matches.first?.similarity ?? 0
                }
                samples.sort()
                let mean = samples.reduce(0, +) / Double(samples.count)
                table.append([
                    "\(size)", format(percentile(samples, 0.5)), format(percentile(samples, 0.99)), format(mean),
                    String(format: "%.4f", checksum / Float(queries)),
                ])
            }
            printTable(header: ["rows", "p50 ms", "p99 ms", "mean ms", "mean top-1"], rows: table)
        }
    }
}
