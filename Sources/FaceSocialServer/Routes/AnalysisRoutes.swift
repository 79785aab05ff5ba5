import FaceKit
import Foundation
import Vapor

extension ImageRequest {
    /// `RequestParameter.faces`, plus `liveness_threshold` where the route declares it.
    func faceParameters(_ config: AppConfig, liveness: Bool = false) throws -> FaceParameters {
        FaceParameters(
            detector: try detector(), detection: try detectionOptions(maxFacesLimit: config.maxFaces),
            minQuality: try number(.minQuality),
            livenessThreshold: liveness
                ? try number(.livenessThreshold, default: config.livenessThreshold) : config.livenessThreshold)
    }
}

/// The stateless face routes: embed, verify, liveness, analyze and the batch form of analyze.
struct AnalysisRoutes: RouteCollection {
    let faces: FaceService
    let config: AppConfig
    var cache: ResultCache? = nil

    func boot(routes: any RoutesBuilder) throws {
        let v1 = routes.grouped("v1")
        v1.on(.POST, "embed", body: .stream, use: embed)
        v1.on(.POST, "verify", body: .stream, use: verify)
        v1.on(.POST, "liveness", body: .stream, use: liveness)
        v1.on(.POST, "analyze", body: .stream, use: analyze)
        v1.on(.POST, "batch", "analyze", body: .stream, use: batchAnalyze)
            .allowingBody(upTo: config.batchBodyLimit)
    }

    var pipeline: FacePipeline { FacePipeline(faces: faces) }

    static func kinds(_ input: ImageRequest) throws -> Set<AnalysisKind> {
        guard let names = try input.list(.analyses) else { return AnalysisKind.defaults }
        return Set(names.compactMap(AnalysisKind.init(rawValue:)))
    }

    // MARK: - /v1/embed

    @Sendable
    func embed(_ req: Request) async throws -> Envelope<EmbedResponse> {
        let input = try await req.imageRequest(maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.embed)
        var p = try input.faceParameters(config)
        p.recognizer = try faces.recognizer(named: try input.choice(.recognitionModel), field: "model")
        let encoding = EmbeddingEncoding(rawValue: try input.choice(.encoding))!
        let (image, reports) = try await pipeline.run(
            try input.image("image"), p, kinds: [.embedding, .quality], context: req.context)
        return req.envelope(
            EmbedResponse(
                faces: reports.map { FaceReportDTO($0, kinds: [.embedding, .quality], encoding: encoding) },
                faceCount: reports.count, image: ImageSizeDTO(width: image.width, height: image.height),
                embeddingModel: faces.modelLabel(p.recognizer.id), dimension: p.recognizer.network.dimension,
                encoding: encoding.rawValue))
    }

    // MARK: - /v1/verify

    @Sendable
    func verify(_ req: Request) async throws -> Envelope<VerifyResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.verify)
        var p = try input.faceParameters(config)
        p.recognizer = try faces.recognizer(named: try input.choice(.recognitionModel), field: "model")
        let threshold = try input.number(.verifyThreshold, default: p.recognizer.threshold(config))
        let first = try await primaryFace(try input.image("image1"), p, field: "image1", context: req.context)
        let second: (embedding: [Float], face: VerifyResponse.FaceSummary?)
        if input.images["image2"] != nil {
            let report = try await primaryFace(try input.image("image2"), p, field: "image2", context: req.context)
            second = (report.embedding!, .init(report))
        } else if let embedding = try input.embedding(
            .referenceEmbedding, dimension: p.recognizer.network.dimension)
        {
            second = (EmbeddingMath.normalized(embedding), nil)
        } else {
            throw APIError.validation("send image2, or an embedding to compare image1 with", field: "image2")
        }
        let similarity = EmbeddingMath.cosine(first.embedding!, second.embedding)
        return req.envelope(
            VerifyResponse(
                similarity: (similarity * 10000).rounded() / 10000, thresholdUsed: threshold,
                isSamePerson: similarity >= threshold,
                faces: .init(image1: .init(first), image2: second.face), model: faces.modelLabel(p.recognizer.id)))
    }

    /// The largest face of an image with its embedding, or 422 `NO_FACE_DETECTED` naming the image.
    func primaryFace(_ bytes: [UInt8], _ p: FaceParameters, field: String, context: RequestContext) async throws
        -> FaceReport
    {
        var options = p
        options.detection.maxFaces = config.maxFaces
        let (_, reports) = try await pipeline.run(bytes, options, kinds: [.embedding, .quality], context: context)
        guard let largest = reports.max(by: { $0.face.box.area < $1.face.box.area }) else {
            var error = APIError.noFace("no face was detected in \(field)")
            error.details["image"] = field
            throw error
        }
        return largest
    }

    // MARK: - /v1/liveness

    @Sendable
    func liveness(_ req: Request) async throws -> Envelope<LivenessResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.liveness)
        var p = try input.faceParameters(config)
        p.livenessThreshold = try input.number(.livenessCheckThreshold, default: config.livenessThreshold)
        let (image, reports) = try await pipeline.run(
            try input.image("image"), p, kinds: [.liveness, .quality], context: req.context)
        guard let primary = reports.max(by: { $0.face.box.area < $1.face.box.area }), let result = primary.liveness
        else { throw APIError.noFace() }
        return req.envelope(
            LivenessResponse(
                isReal: result.isReal, score: LivenessDTO(result).score, probability: LivenessDTO(result).probability,
                thresholdUsed: p.livenessThreshold,
                faces: reports.map { FaceReportDTO($0, kinds: [.liveness, .quality]) },
                image: ImageSizeDTO(width: image.width, height: image.height)))
    }

    // MARK: - /v1/analyze

    @Sendable
    func analyze(_ req: Request) async throws -> Envelope<AnalyzeResponse> {
        let input = try await req.imageRequest(
            maxBytes: config.imageLimits.maxBytes, parameters: RouteParameters.analyze)
        let p = try input.faceParameters(config, liveness: true)
        let kinds = try Self.kinds(input)
        let bytes = try input.image("image")
        // Embeddings are biometric templates: results that carry them are never cached.
        let cache = kinds.contains(.embedding) ? nil : self.cache
        let key = cache?.requestKey(
            route: "analyze", image: bytes, models: faces.modelFingerprint,
            parameters: [
                "detector": p.detector.rawValue, "options": "\(p.detection)", "min_quality": "\(p.minQuality)",
                "liveness_threshold": "\(p.livenessThreshold)",
                "analyses": kinds.map(\.rawValue).sorted().joined(separator: ","),
            ])
        if let key,
            let cached = await cache?.lookup(key, route: "analyze", as: AnalyzeResponse.self, context: req.context)
        {
            return req.envelope(cached)
        }
        let (image, reports) = try await pipeline.run(bytes, p, kinds: kinds, context: req.context)
        let result = AnalyzeResponse(
            faces: reports.map { FaceReportDTO($0, kinds: kinds) }, faceCount: reports.count,
            image: ImageSizeDTO(width: image.width, height: image.height))
        if let key { await cache?.store(key, result, context: req.context) }
        return req.envelope(result)
    }

    // MARK: - /v1/batch/analyze

    @Sendable
    func batchAnalyze(_ req: Request) async throws -> Envelope<BatchResponse> {
        // A batch may carry several images, each up to the single-image limit.
        let input = try await req.imageRequest(
            maxBytes: config.batchBodyLimit, parameters: RouteParameters.batchAnalyze)
        let p = try input.faceParameters(config, liveness: true)
        let kinds = try Self.kinds(input)
        let images = input.imageList
        guard !images.isEmpty else { throw APIError.validation("the batch holds no images", field: "images") }
        guard images.count <= config.batchMaxImages else {
            throw APIError.validation(
                "a batch holds at most \(config.batchMaxImages) images, got \(images.count)", field: "images")
        }
        let context = req.context
        let limit = config.batchConcurrency
        // Bounded concurrency: at most `limit` images in flight, each failing on its own.
        let items = await withTaskGroup(of: (Int, BatchResponse.Item).self) { group in
            var results = [BatchResponse.Item?](repeating: nil, count: images.count)
            var next = 0
            func start() {
                let index = next
                next += 1
                group.addTask {
                    do {
                        guard images[index].count <= config.imageLimits.maxBytes else {
                            throw APIError.imageTooLarge("image \(index) exceeds \(config.imageLimits.maxBytes) bytes")
                        }
                        let (image, reports) = try await pipeline.run(images[index], p, kinds: kinds, context: context)
                        let data = AnalyzeResponse(
                            faces: reports.map { FaceReportDTO($0, kinds: kinds) }, faceCount: reports.count,
                            image: ImageSizeDTO(width: image.width, height: image.height))
                        return (index, BatchResponse.Item(index: index, data: data, error: nil))
                    } catch {
                        let apiError = APIError.from(error)
                        return (
                            index,
                            BatchResponse.Item(
                                index: index, data: nil,
                                error: .init(code: apiError.code, message: apiError.message, details: apiError.details))
                        )
                    }
                }
            }
            while next < min(limit, images.count) { start() }
            for await (index, item) in group {
                results[index] = item
                if next < images.count { start() }
            }
            return results.compactMap { $0 }
        }
        let failed = items.filter { $0.error != nil }.count
        return req.envelope(BatchResponse(items: items, succeeded: items.count - failed, failed: failed))
    }
}

struct EmbedResponse: Content {
    let faces: [FaceReportDTO]
    let faceCount: Int
    let image: ImageSizeDTO
    let embeddingModel: String
    let dimension: Int
    let encoding: String
}

struct VerifyResponse: Content {
    struct FaceSummary: Content {
        let bbox: BoxDTO
        let score: Float
        let quality: QualityDTO

        init(_ r: FaceReport) {
            bbox = BoxDTO(r.face.box)
            score = (r.face.score * 10000).rounded() / 10000
            quality = QualityDTO(r.quality)
        }
    }
    struct Faces: Content {
        let image1: FaceSummary
        let image2: FaceSummary?
    }
    let similarity: Float
    let thresholdUsed: Float
    let isSamePerson: Bool
    let faces: Faces
    let model: String
}

struct LivenessResponse: Content {
    let isReal: Bool
    let score: Float
    let probability: Float
    let thresholdUsed: Float
    let faces: [FaceReportDTO]
    let image: ImageSizeDTO
}

struct BatchResponse: Content {
    struct ItemError: Content {
        let code: String
        let message: String
        let details: [String: String]
    }
    struct Item: Content {
        let index: Int
        let data: AnalyzeResponse?
        let error: ItemError?
    }
    let items: [Item]
    let succeeded: Int
    let failed: Int
}
