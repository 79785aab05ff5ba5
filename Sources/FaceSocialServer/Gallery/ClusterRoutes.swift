import FaceKit
import Foundation
import Vapor

/// Faces nobody has named yet: enrolled without a subject (or kept by identify), grouped into
/// clusters as they come (`FaceClustering`), listed largest first, and named or erased a cluster
/// at a time. Each route parses, calls the use case, and answers with its DTO.
struct ClusterRoutes: RouteCollection {
    let gallery: GalleryRoutes
    var config: AppConfig { gallery.config }
    var store: GalleryStore { gallery.store }
    var useCases: GalleryUseCases { gallery.useCases }

    func boot(routes: any RoutesBuilder) throws {
        let read = routes.grouped(GalleryAccess(permission: .collectionsRead))
        let write = routes.grouped(GalleryAccess(permission: .collectionsWrite))
        let enrol = routes.grouped(GalleryAccess(permission: .faceEnroll))
        let collection = ["v1", "collections", ":collection"] as [PathComponent]
        let cluster = collection + ["clusters", ":cluster"]
        enrol.on(.POST, collection + ["faces"], body: .stream, use: enrolUnnamed)
        read.get(collection + ["clusters"], use: listClusters)
        read.get(cluster, use: getCluster)
        write.post(cluster + ["assign"], use: assign)
        write.delete(cluster, use: erase)
        write.delete(cluster + ["faces", ":face"], use: eraseFace)
    }

    /// Faces per cluster in a listing, unless the caller asks for another number.
    static let facesPerCluster = 5

    @Sendable
    func enrolUnnamed(_ req: Request) async throws -> Response {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.enrolUnnamed)
        let p = try input.faceParameters(config)
        let mode = GalleryUseCases.EnrolMode(rawValue: try input.choice(.enrolMode))!
        let filter = QualityFilter(rawValue: try input.choice(.qualityFilter))!
        let collectionID = try GalleryRoutes.uuid(req, "collection")
        return try await gallery.idempotency.respond(
            to: req, scope: "enrol unnamed \(collectionID)", requestSHA256: input.requestSHA256
        ) {
            let threshold = try await useCases.model(of: collectionID).recognizer.threshold(config)
            let enrolled = try await useCases.enrolUnnamed(
                try input.image("image"), parameters: p, mode: mode, quality: filter, collectionID: collectionID,
                threshold: threshold, context: req.context)
            await req.audit(
                action: "cluster.enrol", resourceType: "collection", resourceID: collectionID.uuidString.lowercased(),
                details: [
                    "faces": "\(enrolled.faces.count)",
                    "clusters": Set(enrolled.faces.map { $0.placement.clusterID.uuidString.lowercased() }).sorted()
                        .joined(separator: ","),
                ])
            let response = Response(status: .created)
            try response.content.encode(req.envelope(try UnnamedEnrolResponse(enrolled)))
            return response
        }
    }

    static func queryInteger(_ req: Request, _ name: String, default value: Int, _ range: ClosedRange<Int>) throws
        -> Int
    {
        guard let sent = req.query[String.self, at: name] else { return value }
        guard let number = Int(sent), range.contains(number) else {
            throw APIError.validation(
                "\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound)", field: name)
        }
        return number
    }

    @Sendable
    func listClusters(_ req: Request) async throws -> Envelope<ClusterPageDTO> {
        let limit = try Self.queryInteger(req, "limit", default: 50, 1...500)
        let offset = try Self.queryInteger(req, "offset", default: 0, 0...Int(Int32.max))
        let minSize = try Self.queryInteger(req, "min_size", default: 1, 1...Int(Int32.max))
        let faces = try Self.queryInteger(req, "faces", default: Self.facesPerCluster, 0...100)
        let collectionID = try GalleryRoutes.uuid(req, "collection")
        let page = try await store.clusters(
            in: collectionID, minSize: minSize, limit: limit, offset: offset, facesPerCluster: faces)
        await req.audit(
            action: "cluster.list", resourceType: "collection", resourceID: collectionID.uuidString.lowercased())
        return req.envelope(
            ClusterPageDTO(
                items: try page.clusters.map(ClusterDTO.init), total: page.total, limit: limit, offset: offset))
    }

    @Sendable
    func getCluster(_ req: Request) async throws -> Envelope<ClusterDTO> {
        let clusterID = try GalleryRoutes.uuid(req, "cluster")
        let found = try await store.cluster(clusterID, in: try GalleryRoutes.uuid(req, "collection"))
        await req.audit(action: "cluster.read", resourceType: "cluster", resourceID: clusterID.uuidString.lowercased())
        return req.envelope(try ClusterDTO(found))
    }

    /// Names a cluster: `subject_id` adds its faces to that subject; `external_id` (with an optional
    /// `name` and `metadata`) makes a new subject of it.
    @Sendable
    func assign(_ req: Request) async throws -> Envelope<AssignedClusterDTO> {
        let body = try req.content.decode(AssignClusterBody.self)
        let target: GalleryStore.ClusterTarget
        switch (body.subjectID, body.externalID) {
        case (let id?, nil):
            guard let subjectID = UUID(uuidString: id) else {
                throw APIError.validation("subject_id is not a UUID", field: "subject_id")
            }
            guard body.name == nil, body.metadata == nil else {
                throw APIError.validation("name and metadata go with external_id (a new subject)", field: "name")
            }
            target = .subject(subjectID)
        case (nil, let raw?):
            let externalID = try TextPolicy.checked(raw, field: "external_id")
            target = .new(
                externalID: externalID,
                name: try body.name.map { try TextPolicy.checked($0, field: "name") } ?? externalID,
                metadata: try TextPolicy.metadataJSON(body.metadata))
        default:
            throw APIError.validation(
                "send subject_id (an existing subject) or external_id (a new one), not both", field: "subject_id")
        }
        let clusterID = try GalleryRoutes.uuid(req, "cluster")
        let assigned = try await useCases.assignCluster(
            clusterID, in: try GalleryRoutes.uuid(req, "collection"), to: target, audit: req.auditActor)
        let faceCount = try await store.faceCount(of: try assigned.subject.requireID())
        return req.envelope(
            AssignedClusterDTO(
                clusterID: clusterID, subject: try SubjectDTO(assigned.subject, faceCount: faceCount),
                facesMoved: assigned.faces.count))
    }

    /// Erases a cluster's faces (audited).
    @Sendable
    func erase(_ req: Request) async throws -> Envelope<DeletedDTO> {
        let clusterID = try GalleryRoutes.uuid(req, "cluster")
        let erased = try await store.eraseCluster(
            clusterID, in: try GalleryRoutes.uuid(req, "collection"), audit: req.auditActor)
        return req.envelope(DeletedDTO(id: clusterID, deleted: true, facesErased: erased))
    }

    /// Erases one face of a cluster; the others are grouped again (the cluster may split).
    @Sendable
    func eraseFace(_ req: Request) async throws -> Envelope<ClusterFaceErasedDTO> {
        let collectionID = try GalleryRoutes.uuid(req, "collection")
        let clusterID = try GalleryRoutes.uuid(req, "cluster")
        let faceID = try GalleryRoutes.uuid(req, "face")
        let threshold = try await useCases.model(of: collectionID).recognizer.threshold(config)
        let remains = try await store.eraseUnnamedFace(
            faceID, cluster: clusterID, in: collectionID, threshold: threshold, audit: req.auditActor)
        return req.envelope(ClusterFaceErasedDTO(remains))
    }
}
