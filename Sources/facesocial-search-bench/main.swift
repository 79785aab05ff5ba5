// The identify search benchmark and self-check (scripts/bench-search.sh, docs/benchmarks.md).
//
//   facesocial-search-bench --self-check
//   facesocial-search-bench --data DIR --gallery NAME [--queries N] [--probes 32,64,...] [--lists N]
//   facesocial-search-bench --synthetic ROWS [--dimension 512] [...]   (no files: see `synthetic`)
//
// A gallery NAME in DIR is three files written by bench/search_gallery.py: NAME.f32 (rows x 128
// float32, unit rows), NAME.subjects.i32 (one subject number per row) and NAME.queries.f32.
import CVectorKernels
import FaceSearch
import Foundation

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

/// The first `limit` elements of a raw file (all when nil).
func readArray<T>(_ path: String, as _: T.Type, limit: Int? = nil) throws -> [T] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    return data.withUnsafeBytes {
        let all = $0.bindMemory(to: T.self)
        return Array(all.prefix(limit ?? all.count))
    }
}

/// A UUID from a number and a tag, scrambled like a random one: reproducible and cheap.
func uuid(_ n: Int, _ tag: UInt8) -> UUID {
    var mix = SplitMix64(state: UInt64(n) << 8 | UInt64(tag))
    let a = mix.next()
    let b = mix.next()
    var bytes = [UInt8](repeating: 0, count: 16)
    for i in 0..<8 {
        bytes[i] = UInt8(truncatingIfNeeded: a >> (8 * i))
        bytes[8 + i] = UInt8(truncatingIfNeeded: b >> (8 * i))
    }
    return UUID(
        uuid: (
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
            bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
        ))
}

func recall(_ found: [EmbeddingIndex.Match], _ exact: [EmbeddingIndex.Match], faces: Bool) -> Double {
    guard !exact.isEmpty else { return 1 }
    let want = Set(exact.map { faces ? $0.faceID : $0.subjectID })
    return Double(found.filter { want.contains(faces ? $0.faceID : $0.subjectID) }.count) / Double(want.count)
}

func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max()! }
    func line(_ cells: [String]) -> String {
        "| "
            + cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
            .joined(separator: " | ") + " |"
    }
    print(line(header))
    print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
    for row in rows { print(line(row)) }
}

struct Options {
    var selfCheck = false
    var data = ""
    var gallery = ""
    var queries = 200
    var k = 10
    var probes = [16, 32, 64, 96, 128, 256, 512]
    var lists: Int?
    var changes = 1000
    var rows: Int?
    /// Rows of a generated gallery instead of files, in `dimension` dimensions.
    var synthetic: Int?
    var dimension = 128
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--self-check": o.selfCheck = true
        case "--data": o.data = args.next() ?? ""
        case "--gallery": o.gallery = args.next() ?? ""
        case "--queries": o.queries = Int(args.next() ?? "") ?? o.queries
        case "--k": o.k = Int(args.next() ?? "") ?? o.k
        case "--probes": o.probes = (args.next() ?? "").split(separator: ",").compactMap { Int($0) }
        case "--lists": o.lists = Int(args.next() ?? "")
        case "--changes": o.changes = Int(args.next() ?? "") ?? o.changes
        case "--rows": o.rows = Int(args.next() ?? "")
        case "--synthetic": o.synthetic = Int(args.next() ?? "")
        case "--dimension": o.dimension = Int(args.next() ?? "") ?? o.dimension
        default:
            FileHandle.standardError.write("unknown argument \(a)\n".data(using: .utf8)!)
            exit(2)
        }
    }
    if o.synthetic != nil, o.gallery.isEmpty { o.gallery = "synthetic-\(o.dimension)d" }
    return o
}

// MARK: - Benchmark

/// A generated gallery for any dimension (the 512-d recognizer has no gallery files): identities
/// are random unit centres, each with three faces that are its centre plus Gaussian noise
/// (cosine to the centre about 0.88), and each query is a fresh face of an enrolled identity.
/// Nothing clusters beyond identities, so it is a hard case for the inverted file.
func synthetic(rows: Int, dimension d: Int, queries: Int) -> (vectors: [Float], subjects: [Int32], queries: [Float]) {
    var random = SplitMix64(state: 512)
    let identities = max(1, rows / 3)
    var centres: [Float] = []
    centres.reserveCapacity(identities * d)
    for _ in 0..<identities { centres += random.gaussianUnitVector(d) }
    func face(_ identity: Int) -> [Float] {
        let noise = random.gaussianUnitVector(d)
        return normalized((0..<d).map { centres[identity * d + $0] + 0.53 * noise[$0] })
    }
    var vectors: [Float] = []
    vectors.reserveCapacity(rows * d)
    var subjects: [Int32] = []
    for r in 0..<rows {
        vectors += face(r % identities)
        subjects.append(Int32(r % identities))
    }
    let queryVectors = (0..<queries).flatMap { _ in face(Int(random.next() % UInt64(identities))) }
    return (vectors, subjects, queryVectors)
}

func bench(_ o: Options) throws {
    let d = o.dimension
    let base = "\(o.data)/\(o.gallery)"
    let generated = o.synthetic.map { synthetic(rows: $0, dimension: d, queries: o.queries) }
    let vectors = try generated?.vectors ?? readArray(base + ".f32", as: Float.self, limit: o.rows.map { $0 * d })
    let subjects = try generated?.subjects ?? readArray(base + ".subjects.i32", as: Int32.self, limit: o.rows)
    let allQueries = try generated?.queries ?? readArray(base + ".queries.f32", as: Float.self)
    let rows = vectors.count / d
    precondition(subjects.count == rows)
    let queries = (0..<min(o.queries, allQueries.count / d)).map { Array(allQueries[($0 * d)..<(($0 + 1) * d)]) }
    print(
        "gallery \(o.gallery): \(rows) rows, \(Set(subjects).count) subjects, \(queries.count) queries, k \(o.k); "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores; kernels \(EmbeddingIndex.kernel) (float), "
            + "\(String(cString: fs_dot_u8s8_kernel())) (8-bit)")

    var clock = ContinuousClock.now
    let rssBefore = residentBytes()
    var exact = EmbeddingIndex(dimension: d)
    exact.reserve(rows + o.changes)  // the timed adds below must not double a 5 GB buffer
    vectors.withUnsafeBufferPointer { v in
        for r in 0..<rows {
            exact.add(
                faceID: uuid(r, 1), subjectID: uuid(Int(subjects[r]), 2),
                vector: Array(v[(r * d)..<((r + 1) * d)]))
        }
    }
    let exactBuild = milliseconds(ContinuousClock.now - clock)
    let exactRSS = residentBytes() - rssBefore
    // Exact answers (subjects and faces) and exact timings.
    for q in queries.prefix(5) { _ = exact.search(q, k: o.k) }
    var exactTimes: [Double] = []
    var truthSubjects: [[EmbeddingIndex.Match]] = []
    for q in queries {
        let start = ContinuousClock.now
        truthSubjects.append(exact.search(q, k: o.k))
        exactTimes.append(milliseconds(ContinuousClock.now - start))
    }
    let truthFaces = queries.map { exact.searchFaces($0, k: o.k) }
    exactTimes.sort()

    // The inverted file.
    let training = QuantizedIVFIndex.Training(lists: o.lists ?? QuantizedIVFIndex.Training.lists(forRows: rows))
    let rssBeforeIVF = residentBytes()
    clock = ContinuousClock.now
    var ivf = QuantizedIVFIndex.build(from: exact, training: training, probes: 64, candidates: 64, refinementBits: 2) {
        print("  ivf build: \($0)")
    }
    let ivfBuild = milliseconds(ContinuousClock.now - clock)
    let ivfRSS = residentBytes() - rssBeforeIVF
    let sizes = ivf.listSizes
    print(
        "exact: build \(fmt(exactBuild / 1000, 1)) s, \(exact.memoryBytes / 1_000_000) MB (RSS +\(exactRSS / 1_000_000) MB); "
            + "ivf: \(ivf.listCount) lists (rows per list \(sizes.min()!)...\(sizes.max()!)), train+build "
            + "\(fmt(ivfBuild / 1000, 1)) s, \(ivf.memoryBytes / 1_000_000) MB (RSS +\(ivfRSS / 1_000_000) MB)")

    var table: [[String]] = [
        [
            o.gallery, "\(rows)", "exact float", fmt(percentile(exactTimes, 0.5)), fmt(percentile(exactTimes, 0.99)),
            "1.000", "1.000", "0", "\(exact.memoryBytes / 1_000_000)",
        ]
    ]
    // Each refinement plane count on the same build: two planes, then one, then none (each drop
    // frees its plane, so the MB column is what that count holds).
    for bits in stride(from: ivf.refinementBits, through: 0, by: -1) {
        while ivf.refinementBits > bits { ivf.dropRefinementPlane() }
        for probes in o.probes where probes <= ivf.listCount {
            for q in queries.prefix(5) { _ = ivf.search(q, k: o.k, perFace: false, probes: probes) }
            var times: [Double] = []
            var subjectRecall = 0.0
            var faceRecall = 0.0
            var maxError: Float = 0
            for (i, q) in queries.enumerated() {
                let start = ContinuousClock.now
                let found = ivf.search(q, k: o.k, perFace: false, probes: probes)
                times.append(milliseconds(ContinuousClock.now - start))
                subjectRecall += recall(found, truthSubjects[i], faces: false)
                let faces = ivf.search(q, k: o.k, perFace: true, probes: probes)
                faceRecall += recall(faces, truthFaces[i], faces: true)
                // Similarity error on faces both answers hold.
                let exactScores = Dictionary(truthFaces[i].map { ($0.faceID, $0.similarity) }, uniquingKeysWith: max)
                for m in faces { if let e = exactScores[m.faceID] { maxError = max(maxError, abs(e - m.similarity)) } }
            }
            times.sort()
            table.append([
                o.gallery, "\(rows)", "ivf-sq8+r\(bits) \(ivf.listCount)/\(probes)", fmt(percentile(times, 0.5)),
                fmt(percentile(times, 0.99)), fmt(subjectRecall / Double(queries.count), 3),
                fmt(faceRecall / Double(queries.count), 3), fmt(Double(maxError), 4), "\(ivf.memoryBytes / 1_000_000)",
            ])
        }
    }
    // Template scoring (identify's match_mode=template): the best-face search for more subjects,
    // their rows, and the re-rank; its cost per query on each index.
    func templateTimes(_ search: ([Float]) -> [EmbeddingIndex.Match], rows: (Set<UUID>) -> [UUID: [[Float]]])
        -> (Double, Double)
    {
        var times: [Double] = []
        for q in queries {
            let start = ContinuousClock.now
            let matches = search(q)
            _ = SubjectTemplates.rerank(matches, query: q, rows: rows(Set(matches.map(\.subjectID))), k: o.k)
            times.append(milliseconds(ContinuousClock.now - start))
        }
        times.sort()
        return (percentile(times, 0.5), percentile(times, 0.99))
    }
    let candidates = SubjectTemplates.candidateCount(o.k)
    let exactTemplate = templateTimes({ exact.search($0, k: candidates) }, rows: { exact.rows(of: $0) })
    let ivfTemplate = templateTimes(
        { ivf.search($0, k: candidates, perFace: false, probes: 512) }, rows: { ivf.rows(of: $0) })
    print(
        "match_mode=template (\(candidates) candidates): exact p50 \(fmt(exactTemplate.0)) ms p99 \(fmt(exactTemplate.1)); "
            + "ivf 512 probes, \(ivf.refinementBits) planes: p50 \(fmt(ivfTemplate.0)) ms p99 \(fmt(ivfTemplate.1))")
    printTable(
        [
            "gallery", "rows", "index lists/probes", "p50 ms", "p99 ms", "recall@10 subj", "recall@10 faces",
            "max |sim err|", "MB",
        ], table)

    // Incremental changes at full size: adds of new faces (new subjects), then removal of as many
    // existing faces; the exact index too (its adds may double its buffer: the max shows it).
    var random = SplitMix64(state: 99)
    func timeChanges(_ label: String, add: (Int, [Float]) -> Void, remove: (Int) -> Void) -> [String] {
        var addTimes: [Double] = []
        var removeTimes: [Double] = []
        for i in 0..<o.changes {
            let r = Int(random.next() % UInt64(rows))
            let v = Array(vectors[(r * d)..<((r + 1) * d)])
            let start = ContinuousClock.now
            add(i, v)
            addTimes.append(milliseconds(ContinuousClock.now - start))
        }
        for _ in 0..<o.changes {
            let r = Int(random.next() % UInt64(rows))
            let start = ContinuousClock.now
            remove(r)
            removeTimes.append(milliseconds(ContinuousClock.now - start))
        }
        addTimes.sort()
        removeTimes.sort()
        return [
            label, "\(rows)", fmt(percentile(addTimes, 0.5) * 1000, 1), fmt(addTimes.last! * 1000, 0),
            fmt(percentile(removeTimes, 0.5) * 1000, 1), fmt(removeTimes.last! * 1000, 0),
        ]
    }
    let changeRows = [
        timeChanges(
            "ivf-sq8", add: { i, v in ivf.add(faceID: uuid(rows + i, 3), subjectID: uuid(rows + i, 4), vector: v) },
            remove: { r in ivf.remove(faceID: uuid(r, 1)) }),
        timeChanges(
            "exact float",
            add: { i, v in exact.add(faceID: uuid(rows + i, 3), subjectID: uuid(rows + i, 4), vector: v) },
            remove: { r in exact.remove(faceID: uuid(r, 1)) }),
    ]
    print("incremental changes (\(o.changes) each, µs):")
    printTable(["index", "rows", "add p50 µs", "add max µs", "remove p50 µs", "remove max µs"], changeRows)
    // Whole-subject erasure scans the subject column once.
    let start = ContinuousClock.now
    let erased = ivf.remove(subjectID: uuid(Int(subjects[rows / 2]), 2))
    print(
        "ivf-sq8 remove(subjectID:) of \(erased) faces at \(rows) rows: \(fmt(milliseconds(ContinuousClock.now - start))) ms"
    )
}

func normalized(_ v: [Float]) -> [Float] {
    let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / n }
}

let options = parse()
if options.selfCheck {
    exit(SelfCheck.run() ? 0 : 1)
} else {
    do { try bench(options) } catch {
        FileHandle.standardError.write("\(error)\n".data(using: .utf8)!)
        exit(1)
    }
}
