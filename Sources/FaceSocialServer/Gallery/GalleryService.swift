import FaceKit
import FaceSearch
import Fluent
import FluentPostgresDriver
import Foundation
import Logging
import PostgresNIO
import SQLKit
import Synchronization
import Vapor

/// Something to run when a subject is erased, besides deleting its rows and index entries.
/// Issue 6 registers the result cache here so that cached responses about the subject go too.
public protocol SubjectErasureHook: Sendable {
    func subjectErased(collectionID: UUID, subjectID: UUID) async throws
}

/// The embedding model a gallery's rows belong to: only rows of the same model and version are
/// ever compared.
public struct EmbeddingModelKey: Hashable, Sendable {
    public let id: String
    public let version: String
    public var label: String { "\(id)@\(version)" }
    /// The length of its embeddings.
    public var dimension: Int { (RecognitionModel.named(id) ?? .standard).network.dimension }
}

/// In-memory search indexes, one per collection and embedding model, loaded lazily from the
/// database (a replica when one is healthy) and kept current: this instance's writes update them
/// in place, and other instances' writes are seen through the per-collection version counter —
/// by LISTEN/NOTIFY on PostgreSQL (with a slow poll as a safety net) and by polling the counters
/// every `FACESOCIAL_GALLERY_POLL_MS` on SQLite. An index older than the newest known version is
/// rebuilt on its next search.
public final class GalleryService: Sendable {
    struct Key: Hashable {
        let collectionID: UUID
        let model: EmbeddingModelKey
    }
    /// The index is shared by reference: searches read it under its read lock while a write
    /// applies under its write lock, in place (no copy of a multi-gigabyte index per enrolment).
    struct Loaded {
        let index: FaceIndex
        var version: Int64
    }

    public let router: DatabaseRouter
    public let cipher: DataCipher
    /// The unnamed faces' indexes, for clustering (Gallery/FaceClusters.swift).
    let clusterIndexes: ClusterIndexes
    let logger: Logger
    let pollInterval: Duration
    /// When a collection's index turns from exact to the 8-bit inverted file, and how it searches.
    let searchPolicy: FaceIndex.Policy
    private let indexes = Mutex<[Key: Loaded]>([:])
    /// The newest version of each collection this instance knows of.
    private let knownVersions = Mutex<[UUID: Int64]>([:])
    private let hooks = Mutex<[any SubjectErasureHook]>([])
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let loads = Mutex<Int>(0)
    private let listenConnection = Mutex<PostgresConnection?>(nil)
    /// Each collection's recognizer id: fixed at creation, so read once.
    private let recognizers = Mutex<[UUID: String]>([:])

    init(
        router: DatabaseRouter, cipher: DataCipher, logger: Logger, pollMs: Int,
        searchPolicy: FaceIndex.Policy = .standard
    ) {
        self.router = router
        self.cipher = cipher
        self.clusterIndexes = ClusterIndexes(cipher: cipher)
        self.logger = logger
        self.pollInterval = .milliseconds(pollMs)
        self.searchPolicy = searchPolicy
    }

    public func addErasureHook(_ hook: any SubjectErasureHook) { hooks.withLock { $0.append(hook) } }
    var erasureHooks: [any SubjectErasureHook] { hooks.withLock { $0 } }

    /// How many times an index was (re)built from the database (tests watch it).
    public var loadCount: Int { loads.withLock { $0 } }

    /// The recognizer a collection was created with (404 for no collection).
    func recognizer(of collectionID: UUID) async throws -> RecognitionModel {
        let id: String
        if let known = recognizers.withLock({ $0[collectionID] }) {
            id = known
        } else {
            guard let row = try await router.read({ db in try await GalleryCollection.find(collectionID, on: db) })
            else {
                throw APIError.notFound("no collection \(collectionID.uuidString.lowercased())")
            }
            id = row.recognitionModel
            recognizers.withLock { $0[collectionID] = id }
        }
        guard let model = RecognitionModel.named(id) else {
            throw APIError.modelUnavailable("this collection's recognition model \(id) is not known here", model: id)
        }
        return model
    }

    // MARK: - Versions

    /// Bumps a collection's version inside the write's transaction and, on PostgreSQL, queues the
    /// notification (delivered when the transaction commits).
    func bumpVersion(_ collectionID: UUID, on db: any Database) async throws -> Int64 {
        let sql = db as! any SQLDatabase
        let row = try await sql.raw(
            "UPDATE gallery_versions SET version = version + 1 WHERE id = \(bind: collectionID) RETURNING version"
        ).first()
        guard let version = try row?.decode(column: "version", as: Int64.self) else {
            throw APIError.notFound("no collection \(collectionID.uuidString.lowercased())")
        }
        if router.kind == .postgres {
            try await GalleryChange.version(collectionID: collectionID, version: version).notify(on: sql)
        }
        return version
    }

    /// Bumps a collection's clusters counter inside a write to its unnamed faces (which locks the
    /// row until commit, so such writes take turns), and its version too when the write changes
    /// what a search finds (a cluster named). Returns the new (version, clusters version).
    func bumpClusters(_ collectionID: UUID, searchable: Bool = false, on db: any Database) async throws
        -> (version: Int64, clusters: Int64)
    {
        let sql = db as! any SQLDatabase
        let step = searchable ? 1 : 0
        let row = try await sql.raw(
            """
            UPDATE gallery_versions SET version = version + \(bind: step), clusters_version = clusters_version + 1
            WHERE id = \(bind: collectionID) RETURNING version, clusters_version
            """
        ).first()
        guard let row, let version = try? row.decode(column: "version", as: Int64.self),
            let clusters = try? row.decode(column: "clusters_version", as: Int64.self)
        else {
            throw APIError.notFound("no collection \(collectionID.uuidString.lowercased())")
        }
        if searchable, router.kind == .postgres {
            try await GalleryChange.version(collectionID: collectionID, version: version).notify(on: sql)
        }
        return (version, clusters)
    }

    /// Inside the transaction that erases a collection: other instances drop its indexes when it
    /// commits (on SQLite they see its version row gone at their next poll).
    func collectionDeleted(_ collectionID: UUID, on db: any Database) async throws {
        if router.kind == .postgres, let sql = db as? any SQLDatabase {
            try await GalleryChange.deleted(collectionID: collectionID).notify(on: sql)
        }
    }

    /// Records a version seen from another instance (or this one).
    func observe(_ collectionID: UUID, version: Int64) {
        knownVersions.withLock { $0[collectionID] = max($0[collectionID] ?? 0, version) }
    }

    func forget(_ collectionID: UUID) {
        clusterIndexes.forget(collectionID)
        recognizers.withLock { $0[collectionID] = nil }
        knownVersions.withLock { $0[collectionID] = nil }
        indexes.withLock { map in map = map.filter { $0.key.collectionID != collectionID } }
    }

    /// After this instance committed `version`: applies the change to loaded indexes that were
    /// exactly one version behind, and drops any other (it reloads on its next search). The change
    /// applies in place under the index's write lock; searches already running finish first.
    func committed(_ collectionID: UUID, version: Int64, apply: (EmbeddingModelKey, FaceIndex) -> Void) {
        observe(collectionID, version: version)
        indexes.withLock { map in
            for key in map.keys where key.collectionID == collectionID {
                if map[key]!.version == version - 1 {
                    apply(key.model, map[key]!.index)
                    map[key]!.version = version
                } else {
                    map[key] = nil
                }
            }
        }
    }

    // MARK: - Search

    struct StaleReplica: Error {}

    /// The current index of a collection for one embedding model.
    func index(_ collectionID: UUID, model: EmbeddingModelKey) async throws -> FaceIndex {
        let key = Key(collectionID: collectionID, model: model)
        let required = knownVersions.withLock { $0[collectionID] ?? 0 }
        if let loaded = indexes.withLock({ $0[key] }), loaded.version >= required { return loaded.index }
        let loaded: Loaded
        do {
            loaded = try await router.read { db in try await self.load(key, from: db, atLeast: required) }
        } catch is StaleReplica {
            // The replica has not replayed the change we were told about yet.
            loaded = try await load(key, from: try router.primary, atLeast: required)
        }
        observe(collectionID, version: loaded.version)
        indexes.withLock { map in
            if (map[key]?.version ?? -1) < loaded.version { map[key] = loaded }
        }
        return loaded.index
    }

    private func load(_ key: Key, from db: any Database, atLeast required: Int64) async throws -> Loaded {
        // The version first: rows read after it are at least that new, so a change in between
        // only makes the next search reload once more.
        guard let version = try await GalleryVersion.find(key.collectionID, on: db)?.version else {
            throw APIError.notFound("no collection \(key.collectionID.uuidString.lowercased())")
        }
        if version < required { throw StaleReplica() }
        let rows = try await EnrolledFace.query(on: db)
            .filter(\.$collectionID == key.collectionID)
            .filter(\.$embeddingModel == key.model.id)
            .filter(\.$embeddingModelVersion == key.model.version)
            .all()
        let index = try embeddingIndex(rows, dimension: key.model.dimension, cipher: cipher) { $0.$subject.id }
        loads.withLock { $0 += 1 }
        // At or above the policy's threshold this builds the inverted file before anyone searches.
        // One policy for both recognizers: the inverted file kept recall@10 ≥ 0.99 on realistic
        // galleries of each (SFace 128-d at 10M, w600k_mbf 512-d at 1M; docs/benchmarks.md).
        return Loaded(index: FaceIndex(index, policy: searchPolicy), version: version)
    }

    // MARK: - Watching other instances

    func start() {
        let pollInterval = router.kind == .postgres ? max(self.pollInterval * 10, .seconds(5)) : self.pollInterval
        let poll = Task { [weak self] in
            while !Task.isCancelled {
                await self?.pollVersions()
                try? await Task.sleep(for: pollInterval)
            }
        }
        tasks.withLock { $0.append(poll) }
        if !router.replicaIDs.isEmpty {
            // Checked well within the lag bound, so a lagging replica is dropped in time.
            let interval = Duration.milliseconds(max(100, min(250, Int(router.maxLagMs / 4))))
            let router = self.router
            let check = Task {
                while !Task.isCancelled {
                    await router.checkReplicas()
                    try? await Task.sleep(for: interval)
                }
            }
            tasks.withLock { $0.append(check) }
        }
        if router.kind == .postgres, let configuration = router.postgresPrimary {
            let listen = Task { [weak self] in
                guard let self else { return }
                await self.listen(configuration.coreConfiguration)
            }
            tasks.withLock { $0.append(listen) }
        }
    }

    func stop() async {
        let running = tasks.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in running { task.cancel() }
        // Closing the LISTEN connection ends its notification loop.
        if let connection = listenConnection.withLock({ $0 }) { try? await connection.close() }
        // Waits for the loops to end, but not on a query stuck on a dead socket.
        _ = try? await withTimeout(seconds: 2) {
            for task in running { await task.value }
        }
    }

    /// Reads every collection's version from the primary (a few rows; cheap).
    func pollVersions() async {
        do {
            let rows = try await GalleryVersion.query(on: try router.primary).all()
            let present = Set(rows.compactMap(\.id))
            for row in rows { if let id = row.id { observe(id, version: row.version) } }
            let gone = knownVersions.withLock { Set($0.keys).subtracting(present) }
            for id in gone { forget(id) }
        } catch {
            logger.debug("gallery version poll failed: \(error)")
        }
    }

    /// A dedicated connection to the primary that LISTENs for version changes, reconnecting
    /// after failures.
    private func listen(_ configuration: PostgresConnection.Configuration) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: 1,
                    logger: logger
                ).get()
                attempt = 0
                listenConnection.withLock { $0 = connection }
                do {
                    try await connection.listen(on: GalleryChange.channel) { notifications in
                        // Catch up on anything missed while (re)connecting.
                        await self.pollVersions()
                        for try await notification in notifications {
                            switch GalleryChange(payload: notification.payload) {
                            case .version(let id, let version): self.observe(id, version: version)
                            case .deleted(let id): self.forget(id)
                            case nil: break
                            }
                        }
                    }
                } catch {
                    if !Task.isCancelled { logger.warning("gallery LISTEN connection lost: \(error)") }
                }
                listenConnection.withLock { $0 = nil }
                try? await connection.close()
            } catch {
                logger.warning("gallery LISTEN connection failed: \(error)")
            }
            attempt += 1
            try? await Task.sleep(for: .milliseconds(min(5000, 200 * attempt)))
        }
    }
}

struct GalleryServiceKey: StorageKey {
    typealias Value = GalleryService
}

extension Application {
    /// The gallery indexes; set up by `FaceSocialApp.configure`.
    public var gallery: GalleryService {
        guard let gallery = storage[GalleryServiceKey.self] else { fatalError("configure() sets up the gallery") }
        return gallery
    }
}
