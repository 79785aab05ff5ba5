import Fluent
import Foundation
import Vapor

/// A bulk enrolment run in the background (`POST …/jobs/enroll`): its progress and each item's
/// result, in the database so any instance answers `GET …/jobs/{id}` and a restart keeps them.
/// The images live only in the memory of the instance that runs the job.
final class EnrolJob: Model, @unchecked Sendable {
    static let schema = "enrol_jobs"
    @ID(key: .id) var id: UUID?
    @Field(key: "collection_id") var collectionID: UUID
    /// The principal that created it (`kind:id`).
    @Field(key: "created_by") var createdBy: String
    /// `running` or `done`.
    @Field(key: "state") var state: String
    @Field(key: "total") var total: Int
    @Field(key: "succeeded") var succeeded: Int
    @Field(key: "failed") var failed: Int
    /// JSON array, one entry per item: its result, or null while it waits.
    @Field(key: "items") var items: Data
    /// Written after every item: a running job silent for `EnrolJobs.lostAfter` lost its instance.
    @Field(key: "heartbeat_at") var heartbeatAt: Date
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "finished_at") var finishedAt: Date?

    init() {}
}

struct CreateEnrolJobs: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(EnrolJob.schema)
            .id()
            .field("collection_id", .uuid, .required, .references(GalleryCollection.schema, "id", onDelete: .cascade))
            .field("created_by", .string, .required)
            .field("state", .string, .required)
            .field("total", .int, .required)
            .field("succeeded", .int, .required)
            .field("failed", .int, .required)
            .field("items", .data, .required)
            .field("heartbeat_at", .datetime, .required)
            .field("created_at", .datetime, .required)
            .field("finished_at", .datetime)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(EnrolJob.schema).delete()
    }
}

/// What a job's items are and how they are run: the batch enrolment's items, two at a time (one
/// image decodes while the other's models run; the models already use every core), each result
/// written to the job's row as it comes.
struct EnrolJobs: Sendable {
    /// Items enrolled at once.
    static let concurrency = 2
    /// A running job whose row has not moved for this long lost the instance that ran it: its
    /// waiting items are reported failed (`JOB_INSTANCE_LOST`), never enrolled later.
    static let lostAfter: TimeInterval = 120

    let router: DatabaseRouter

    /// Creates the job's row, all items waiting.
    func create(collectionID: UUID, by principal: Principal, total: Int) async throws -> EnrolJob {
        let job = EnrolJob()
        job.id = UUID()
        job.collectionID = collectionID
        job.createdBy = "\(principal.kind.rawValue):\(principal.id)"
        job.state = "running"
        job.total = total
        job.succeeded = 0
        job.failed = 0
        job.items = try APIJSON.encoder.encode([BatchEnrolResponse.Item?](repeating: nil, count: total))
        job.heartbeatAt = Date()
        job.createdAt = job.heartbeatAt
        try await job.create(on: try router.primary)
        return job
    }

    /// Pauses before each retry of an item the database could not take (503
    /// `DATABASE_UNAVAILABLE`: SQLite busy with another write, a primary switching over).
    static let retryDelays: [Duration] = [.milliseconds(250), .seconds(1), .seconds(2), .seconds(5)]

    /// Runs every item with `enrol`, recording each result as it comes, then marks the job done.
    /// An item the database could not take is tried again, as a client would retry the 503 (its
    /// faces were not stored, and a retried store that had committed is refused as a duplicate).
    func run(
        _ job: EnrolJob, count: Int, logger: Logger,
        enrol unretried: @escaping @Sendable (Int) async -> BatchEnrolResponse.Item
    ) async {
        let enrol: @Sendable (Int) async -> BatchEnrolResponse.Item = { index in
            var item = await unretried(index)
            for delay in Self.retryDelays where item.error?.code == "DATABASE_UNAVAILABLE" {
                try? await Task.sleep(for: delay)
                item = await unretried(index)
            }
            return item
        }
        var results = [BatchEnrolResponse.Item?](repeating: nil, count: count)
        await withTaskGroup(of: BatchEnrolResponse.Item.self) { group in
            var next = 0
            while next < min(Self.concurrency, count) {
                let index = next
                group.addTask { await enrol(index) }
                next += 1
            }
            for await item in group {
                results[item.index] = item
                if next < count {
                    let index = next
                    group.addTask { await enrol(index) }
                    next += 1
                }
                await save(job, results, done: results.allSatisfy { $0 != nil }, logger: logger)
            }
        }
    }

    private func save(_ job: EnrolJob, _ results: [BatchEnrolResponse.Item?], done: Bool, logger: Logger) async {
        do {
            job.items = try APIJSON.encoder.encode(results)
            job.succeeded = results.filter { $0 != nil && $0?.error == nil }.count
            job.failed = results.filter { $0?.error != nil }.count
            job.heartbeatAt = Date()
            if done {
                job.state = "done"
                job.finishedAt = job.heartbeatAt
            }
            try await job.update(on: try router.primary)
        } catch {
            // The row catches up at the next item; a job that can never write is found lost.
            logger.warning("enrol job \(job.id?.uuidString ?? "?"): progress not saved: \(error)")
        }
    }

    /// The job as it stands; a running job that lost its instance is closed first.
    func find(_ id: UUID, in collectionID: UUID) async throws -> EnrolJob {
        let db = try router.primary
        guard let job = try await EnrolJob.find(id, on: db), job.collectionID == collectionID else {
            throw APIError.notFound("no job \(id.uuidString.lowercased()) in this collection")
        }
        if job.state == "running", Date().timeIntervalSince(job.heartbeatAt) > Self.lostAfter {
            var results = try APIJSON.decoder.decode([BatchEnrolResponse.Item?].self, from: job.items)
            for index in results.indices where results[index] == nil {
                results[index] = BatchEnrolResponse.Item(
                    index: index, externalID: nil, data: nil,
                    error: .init(
                        code: "JOB_INSTANCE_LOST",
                        message: "the instance running this job stopped before this item; it was not enrolled",
                        details: [:]))
            }
            await save(job, results, done: true, logger: Logger(label: "facesocial.jobs"))
        }
        return job
    }
}

struct EnrolJobDTO: Content {
    @LowercaseUUID var id: UUID
    @LowercaseUUID var collectionID: UUID
    /// `running` or `done`.
    let state: String
    let total: Int
    let succeeded: Int
    let failed: Int
    let pending: Int
    /// The items done so far, in item order.
    let items: [BatchEnrolResponse.Item]
    let createdAt: String
    let finishedAt: String?

    init(_ job: EnrolJob) throws {
        let results = try APIJSON.decoder.decode([BatchEnrolResponse.Item?].self, from: job.items)
        id = try job.requireID()
        collectionID = job.collectionID
        state = job.state
        total = job.total
        succeeded = job.succeeded
        failed = job.failed
        pending = results.filter { $0 == nil }.count
        items = results.compactMap { $0 }
        createdAt = job.createdAt.formatted(.iso8601)
        finishedAt = job.finishedAt?.formatted(.iso8601)
    }
}
