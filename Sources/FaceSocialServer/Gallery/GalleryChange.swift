import Foundation
import SQLKit

/// A change to a collection as other instances hear of it on PostgreSQL: one NOTIFY channel whose
/// payload is `<collection>:<version>` after a write and `<collection>:deleted` after the collection
/// is erased. Both ends, the writer's `pg_notify` and the LISTEN loop's reading, go through this type.
enum GalleryChange: Equatable, Sendable {
    case version(collectionID: UUID, version: Int64)
    case deleted(collectionID: UUID)

    static let channel = "facesocial_gallery"

    var payload: String {
        switch self {
        case .version(let id, let version): "\(id.uuidString.lowercased()):\(version)"
        case .deleted(let id): "\(id.uuidString.lowercased()):deleted"
        }
    }

    /// Nil for a payload this version does not write (a newer or foreign writer on the channel).
    init?(payload: String) {
        let parts = payload.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = UUID(uuidString: String(parts[0])) else { return nil }
        if parts[1] == "deleted" {
            self = .deleted(collectionID: id)
        } else if let version = Int64(parts[1]), version >= 0 {
            self = .version(collectionID: id, version: version)
        } else {
            return nil
        }
    }

    /// Queues the notification on the write's transaction: PostgreSQL delivers it at commit, and
    /// never for a transaction that rolls back.
    func notify(on sql: any SQLDatabase) async throws {
        try await sql.raw("SELECT pg_notify(\(bind: Self.channel), \(bind: payload))").run()
    }
}
