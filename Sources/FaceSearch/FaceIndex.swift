import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One collection's search index, shared by reference: searches take a read lock, enrolments and
/// erasures a write lock and change the rows in place (no copy of the index). Below
/// `Policy.approximateFrom` rows it is the exact float index; from there on the 8-bit inverted
/// file (`QuantizedIVFIndex`), built from the rows in the background while searches and writes go
/// on against the exact index, then swapped in with the writes made meanwhile replayed. The
/// inverted file is retrained the same way once it holds `retrainGrowth` times the rows it was
/// trained on. It never goes back to exact (its float rows are gone); a reload from the database
/// below the threshold does.
public final class FaceIndex: @unchecked Sendable {
    public struct Policy: Sendable, Equatable {
        /// Rows from which the inverted file replaces the exact index.
        public var approximateFrom: Int
        /// Lists scanned per query, and lists per gallery (nil: `Training.lists(forRows:)`).
        public var probes: Int
        public var lists: Int?
        /// Subjects re-scored with the float query.
        public var candidates: Int
        /// Retrain once the rows reach this multiple of the rows the centroids were trained on.
        public var retrainGrowth: Int
        /// Refinement planes each row keeps for the re-score (`QuantizedIVFIndex.refinementBits`).
        public var refinementBits: Int

        public init(
            approximateFrom: Int, probes: Int = 512, lists: Int? = nil, candidates: Int = 64, retrainGrowth: Int = 4,
            refinementBits: Int = QuantizedIVFIndex.defaultRefinementBits
        ) {
            self.approximateFrom = approximateFrom
            self.probes = probes
            self.lists = lists
            self.candidates = candidates
            self.retrainGrowth = retrainGrowth
            self.refinementBits = refinementBits
        }

        /// The default: exact below 500,000 rows (14 ms there on the slower of the two development
        /// CPUs, 28 ms at 1M), then 512 probes with one refinement plane (at 10M realistic rows on
        /// the AMD machine: 11.2 ms p50, recall@10 0.990, 1,874 MB; docs/benchmarks.md, "Large
        /// galleries").
        public static let standard = Policy(approximateFrom: 500_000)
        /// Exact at every size.
        public static let exactOnly = Policy(approximateFrom: .max)

        func training(rows: Int) -> QuantizedIVFIndex.Training {
            QuantizedIVFIndex.Training(lists: lists ?? QuantizedIVFIndex.Training.lists(forRows: rows))
        }
    }

    enum Storage: Sendable {
        case exact(EmbeddingIndex)
        case approximate(QuantizedIVFIndex)
    }
    enum Change {
        case add(UUID, UUID, [Float])
        case removeFace(UUID)
        case removeSubject(UUID)
    }

    public let dimension: Int
    public let policy: Policy
    // Internal (not private): template scoring (SubjectTemplates.swift) reads it under the lock.
    var storage: Storage
    /// Non-nil while a rebuild runs: the changes to replay onto its result.
    private var journal: [Change]?
    private let rebuilds = DispatchGroup()
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    public init(dimension: Int, policy: Policy = .standard) {
        self.dimension = dimension
        self.policy = policy
        storage = .exact(EmbeddingIndex(dimension: dimension))
        pthread_rwlock_init(lock, nil)
    }

    /// Takes over a bulk-loaded exact index, building the inverted file first (synchronously: no
    /// one searches this index yet) when it is at or above the threshold.
    public init(_ exact: EmbeddingIndex, policy: Policy = .standard) {
        dimension = exact.dimension
        self.policy = policy
        if exact.count >= policy.approximateFrom {
            storage = .approximate(
                QuantizedIVFIndex.build(
                    from: exact, training: policy.training(rows: exact.count), probes: policy.probes,
                    candidates: policy.candidates, refinementBits: policy.refinementBits))
        } else {
            storage = .exact(exact)
        }
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func reading<T>(_ body: () -> T) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return body()
    }

    private func writing<T>(_ body: () -> T) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return body()
    }

    public var count: Int {
        reading {
            switch storage {
            case .exact(let index): index.count
            case .approximate(let index): index.count
            }
        }
    }

    public var subjectCount: Int {
        reading {
            switch storage {
            case .exact(let index): index.subjectCount
            case .approximate(let index): index.subjectCount
            }
        }
    }

    /// Whether searches go to the inverted file.
    public var isApproximate: Bool {
        reading {
            if case .approximate = storage { return true }
            return false
        }
    }

    public var memoryBytes: Int {
        reading {
            switch storage {
            case .exact(let index): index.memoryBytes
            case .approximate(let index): index.memoryBytes
            }
        }
    }

    /// Whether a rebuild (conversion or retraining) is running.
    public var isRebuilding: Bool { reading { journal != nil } }

    /// Waits for a running rebuild to be swapped in.
    public func waitForRebuild() { rebuilds.wait() }

    public func reserve(_ rows: Int) {
        writing {
            if case .exact(var index) = storage {
                storage = .exact(EmbeddingIndex(dimension: 16))  // drops the reference: `index` is unique
                index.reserve(rows)
                storage = .exact(index)
            }
        }
    }

    /// The `k` best subjects for a normalised query, best first, each with its best face.
    public func search(_ query: [Float], k: Int) -> [EmbeddingIndex.Match] {
        reading {
            switch storage {
            case .exact(let index): index.search(query, k: k)
            case .approximate(let index): index.search(query, k: k)
            }
        }
    }

    /// Adds (or replaces) a face's row.
    public func add(faceID: UUID, subjectID: UUID, vector: [Float]) {
        apply(.add(faceID, subjectID, vector))
    }

    @discardableResult
    public func remove(faceID: UUID) -> Bool {
        apply(.removeFace(faceID)) != 0
    }

    /// Removes every face of a subject; returns how many were removed.
    @discardableResult
    public func remove(subjectID: UUID) -> Int {
        apply(.removeSubject(subjectID))
    }

    @discardableResult
    private func apply(_ change: Change) -> Int {
        writing {
            journal?.append(change)
            let result = Self.apply(change, to: &storage)
            startRebuildIfDue()
            return result
        }
    }

    /// Applies a change in place: the enum's payload is moved out first so that its buffers stay
    /// uniquely referenced (a copy of a 10-million-row index would cost gigabytes).
    private static func apply(_ change: Change, to storage: inout Storage) -> Int {
        switch storage {
        case .exact(var index):
            storage = .exact(EmbeddingIndex(dimension: 16))
            defer { storage = .exact(index) }
            return apply(change, exact: &index)
        case .approximate(var index):
            storage = .exact(EmbeddingIndex(dimension: 16))
            defer { storage = .approximate(index) }
            return apply(change, approximate: &index)
        }
    }

    private static func apply(_ change: Change, exact index: inout EmbeddingIndex) -> Int {
        apply(change, to: &index)
    }

    private static func apply(_ change: Change, approximate index: inout QuantizedIVFIndex) -> Int {
        apply(change, to: &index)
    }

    /// One change to either kind of index (both hold rows the same way).
    private static func apply<Index: FaceRows>(_ change: Change, to index: inout Index) -> Int {
        switch change {
        case .add(let face, let subject, let vector):
            index.add(faceID: face, subjectID: subject, vector: vector)
            return 1
        case .removeFace(let face): return index.remove(faceID: face) ? 1 : 0
        case .removeSubject(let subject): return index.remove(subjectID: subject)
        }
    }

    /// Under the write lock: starts a conversion or a retraining when one is due and none runs.
    /// The rebuild reads a snapshot (copy-on-write: writes meanwhile copy what they touch once).
    private func startRebuildIfDue() {
        guard journal == nil else { return }
        let snapshot = storage
        let policy = self.policy
        switch snapshot {
        case .exact(let index) where index.count >= policy.approximateFrom: break
        case .approximate(let index) where index.count >= policy.retrainGrowth * max(1, index.trainedRows): break
        default: return
        }
        journal = []
        rebuilds.enter()
        DispatchQueue.global(qos: .utility).async {
            let built: QuantizedIVFIndex
            switch snapshot {
            case .exact(let index):
                built = QuantizedIVFIndex.build(
                    from: index, training: policy.training(rows: index.count), probes: policy.probes,
                    candidates: policy.candidates, refinementBits: policy.refinementBits)
            case .approximate(let index):
                built = index.retrained(training: policy.training(rows: index.count))
            }
            self.swapIn(built)
        }
    }

    private func swapIn(_ built: QuantizedIVFIndex) {
        writing {
            var storage = Storage.approximate(built)
            for change in journal ?? [] { _ = Self.apply(change, to: &storage) }
            self.storage = storage
            journal = nil
        }
        rebuilds.leave()
    }
}

/// What the two kinds of index share for changes and template scoring.
protocol FaceRows {
    mutating func add(faceID: UUID, subjectID: UUID, vector: [Float])
    @discardableResult mutating func remove(faceID: UUID) -> Bool
    @discardableResult mutating func remove(subjectID: UUID) -> Int
    func search(_ query: [Float], k: Int) -> [EmbeddingIndex.Match]
    func rows(of subjects: Set<UUID>) -> [UUID: [[Float]]]
}

extension EmbeddingIndex: FaceRows {}
extension QuantizedIVFIndex: FaceRows {}
