import FaceKit
import Foundation
import Vapor

/// Times as RFC 3339 text, whatever the encoder's date strategy.
func iso8601(_ date: Date?) -> String? {
    date.map { $0.formatted(.iso8601) }
}

/// A UUID written lower-case, like every other id the API hands out (users, API keys, audit
/// resource ids, request ids, token subjects); JSONEncoder writes UUIDs upper-case. Read in either.
@propertyWrapper
struct LowercaseUUID: Codable, Sendable, Hashable {
    var wrappedValue: UUID

    init(wrappedValue: UUID) { self.wrappedValue = wrappedValue }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let id = UUID(uuidString: try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a UUID")
        }
        wrappedValue = id
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue.uuidString.lowercased())
    }
}

/// JSON shapes of the gallery routes.
struct CollectionDTO: Content {
    @LowercaseUUID var id: UUID
    let name: String
    let description: String?
    let recognitionModel: String
    let createdAt: String?
    let subjectCount: Int?
    let faceCount: Int?

    init(_ c: GalleryCollection, subjects: Int? = nil, faces: Int? = nil) throws {
        id = try c.requireID()
        name = c.name
        description = c.about
        recognitionModel = c.recognitionModel
        createdAt = iso8601(c.createdAt)
        subjectCount = subjects
        faceCount = faces
    }
}

struct CollectionList: Content {
    let items: [CollectionDTO]
}

struct StoredFaceDTO: Content {
    @LowercaseUUID var id: UUID
    @LowercaseUUID var subjectID: UUID
    let embeddingModel: String
    let quality: Float
    let bbox: BoxDTO
    let createdAt: String?

    init(_ f: EnrolledFace) throws {
        id = try f.requireID()
        subjectID = f.$subject.id
        embeddingModel = "\(f.embeddingModel)@\(f.embeddingModelVersion)"
        quality = (f.quality * 1000).rounded() / 1000
        bbox = BoxDTO(Box(x: f.boxX, y: f.boxY, width: f.boxWidth, height: f.boxHeight))
        createdAt = iso8601(f.createdAt)
    }
}

struct SubjectDTO: Content {
    @LowercaseUUID var id: UUID
    @LowercaseUUID var collectionID: UUID
    let externalID: String
    let name: String
    let metadata: [String: JSONValue]
    let createdAt: String?
    let updatedAt: String?
    let faceCount: Int?
    let faces: [StoredFaceDTO]?

    init(_ s: Subject, faceCount: Int? = nil, faces: [EnrolledFace]? = nil) throws {
        id = try s.requireID()
        collectionID = s.$collection.id
        externalID = s.externalID
        name = s.name
        metadata = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(s.metadata.utf8))) ?? [:]
        createdAt = iso8601(s.createdAt)
        updatedAt = iso8601(s.updatedAt)
        self.faceCount = faceCount ?? faces?.count
        self.faces = try faces?.map(StoredFaceDTO.init)
    }
}

struct SubjectPage: Content {
    let items: [SubjectDTO]
    let total: Int
    let limit: Int
    let offset: Int
}

struct EnrolResponse: Content {
    /// A face the quality filter kept out, and why.
    struct Unindexed: Content {
        let bbox: BoxDTO
        let reasons: [QualityProblemDTO]

        static func list(_ faces: [(face: FaceReport, problems: [QualityProblem])]) -> [Unindexed] {
            faces.map { Unindexed(bbox: BoxDTO($0.face.face.box), reasons: $0.problems.map(QualityProblemDTO.init)) }
        }
    }
    @LowercaseUUID var subjectID: UUID
    let faces: [StoredFaceDTO]
    let facesDetected: Int
    let unindexedFaces: [Unindexed]
}

extension EnrolResponse {
    init(_ enrolled: GalleryUseCases.Enrolled) throws {
        self.init(
            subjectID: enrolled.subjectID, faces: try enrolled.faces.map { try StoredFaceDTO($0) },
            facesDetected: enrolled.facesDetected,
            unindexedFaces: Unindexed.list(enrolled.unindexed))
    }
}

struct BatchEnrolResponse: Content {
    struct Item: Content {
        let index: Int
        let externalID: String?
        let data: EnrolResponse?
        /// An item without external_id: its faces, enrolled unnamed into the clusters.
        var unnamed: UnnamedEnrolResponse? = nil
        let error: BatchResponse.ItemError?
    }
    let items: [Item]
    let succeeded: Int
    let failed: Int
}

struct DeletedDTO: Content {
    @LowercaseUUID var id: UUID
    let deleted: Bool
    let facesErased: Int
}

struct IdentifyResponse: Content {
    struct Candidate: Content {
        @LowercaseUUID var subjectID: UUID
        let externalID: String
        let name: String
        let similarity: Float
        let isMatch: Bool
        @LowercaseUUID var faceID: UUID
    }
    /// A face of the image; when an embedding was sent instead, one entry without bbox, score
    /// and quality (the keys are left out).
    struct Face: Content {
        let bbox: BoxDTO?
        let score: Float?
        let quality: Float?
        let unknown: Bool
        let matches: [Candidate]
        /// With `keep_unmatched=true`: where an unknown face was kept (absent otherwise).
        var kept: UnnamedFaceDTO? = nil
    }
    let faces: [Face]
    let faceCount: Int
    let thresholdUsed: Float
    let topK: Int
    /// `best` (a subject's best face) or `template` (the mean of its faces).
    let matchMode: String
    let model: String
    let gallerySize: Int
    /// Left out when an embedding was sent instead of an image.
    let image: ImageSizeDTO?
}

/// Search by a stored face: the subjects nearest to it, its own subject left out.
struct FaceSearchResponse: Content {
    @LowercaseUUID var faceID: UUID
    @LowercaseUUID var subjectID: UUID
    let unknown: Bool
    let matches: [IdentifyResponse.Candidate]
    let thresholdUsed: Float
    let topK: Int
    let matchMode: String
    let model: String
    let gallerySize: Int
}

struct SubjectExport: Content {
    struct ExportedFace: Content {
        let face: StoredFaceDTO
        let embedding: [Float]
        let keyID: String
        let imageSHA256: String
    }
    struct AuditDTO: Content {
        let action: String
        let actor: String
        let outcome: String
        let requestID: String?
        let createdAt: String?
    }
    let subject: SubjectDTO
    let collection: CollectionDTO
    let faces: [ExportedFace]
    let audit: [AuditDTO]
    let exportedAt: String
}

/// Bodies of the JSON routes.
struct CreateCollectionBody: Content {
    let name: String
    let description: String?
    let recognitionModel: String?
}

struct SubjectBody: Content {
    let externalID: String?
    let name: String?
    let metadata: [String: JSONValue]?
}

// MARK: - Clusters of unnamed faces

struct UnnamedFaceDTO: Content {
    @LowercaseUUID var id: UUID
    @LowercaseUUID var clusterID: UUID
    let embeddingModel: String
    let quality: Float
    let bbox: BoxDTO
    /// `enrol` or `identify`.
    let source: String
    let createdAt: String?

    init(_ f: UnnamedFace, cluster: UUID? = nil) throws {
        id = try f.requireID()
        clusterID = cluster ?? f.clusterID
        embeddingModel = "\(f.embeddingModel)@\(f.embeddingModelVersion)"
        quality = (f.quality * 1000).rounded() / 1000
        bbox = BoxDTO(Box(x: f.boxX, y: f.boxY, width: f.boxWidth, height: f.boxHeight))
        source = f.source
        createdAt = iso8601(f.createdAt)
    }
}

struct ClusterDTO: Content {
    @LowercaseUUID var id: UUID
    let size: Int
    /// Best quality first (a sample of `faces` per cluster in listings, all of them alone).
    let faces: [UnnamedFaceDTO]

    init(_ c: GalleryStore.ClusterSummary) throws {
        id = c.id
        size = c.size
        faces = try c.faces.map { try UnnamedFaceDTO($0) }
    }
}

/// One face erased from a cluster, and the clusters its other faces now form (none when it was
/// the last; more than one when it was the only link between them).
struct ClusterFaceErasedDTO: Content {
    struct Remaining: Content {
        @LowercaseUUID var id: UUID
        let size: Int
    }
    @LowercaseUUID var id: UUID
    let deleted: Bool
    let clusters: [Remaining]

    init(_ remains: GalleryStore.ClusterRemains) {
        id = remains.erased
        deleted = true
        clusters = remains.clusters.map { Remaining(id: $0.id, size: $0.size) }
    }
}

struct ClusterPageDTO: Content {
    let items: [ClusterDTO]
    let total: Int
    let limit: Int
    let offset: Int
}

struct UnnamedEnrolResponse: Content {
    /// Each stored face with the cluster it joined, and the clusters it merged into that one.
    struct Placed: Content {
        let face: UnnamedFaceDTO
        let merged: [String]
    }
    let faces: [Placed]
    let facesDetected: Int
    let unindexedFaces: [EnrolResponse.Unindexed]

    init(_ e: GalleryUseCases.EnrolledUnnamed) throws {
        faces = try e.faces.map {
            Placed(
                face: try UnnamedFaceDTO($0.row, cluster: $0.placement.clusterID),
                merged: $0.placement.merged.map { $0.uuidString.lowercased() })
        }
        facesDetected = e.facesDetected
        unindexedFaces = EnrolResponse.Unindexed.list(e.unindexed)
    }
}

struct AssignClusterBody: Content {
    let subjectID: String?
    let externalID: String?
    let name: String?
    let metadata: [String: JSONValue]?
}

struct AssignedClusterDTO: Content {
    @LowercaseUUID var clusterID: UUID
    let subject: SubjectDTO
    let facesMoved: Int
}
