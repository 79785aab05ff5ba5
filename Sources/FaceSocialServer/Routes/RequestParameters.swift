import FaceKit
import FaceSearch

/// One request parameter, declared once: its name, what it holds, its default and what it means.
/// Routes read parameters only through these (`ImageRequest` refuses one its route did not
/// declare), and the OpenAPI document lists each route's parameters from the same declarations,
/// so the parser and the document cannot drift apart. `ParameterContractTests` sends every
/// documented parameter a bad value and expects the 400 that proves it is read.
struct RequestParameter: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        /// A default of nil: the route supplies it from configuration (named in the summary).
        case number(ClosedRange<Float>, default: Float?)
        /// No maximum: the route bounds it from configuration (named in the summary).
        case integer(minimum: Int, maximum: Int?, default: Int?)
        case choice([String], default: String)
        /// Comma-separated names from a set, or a JSON array of them.
        case list([String])
        /// Body only, in a shape the route reads itself (an embedding, batch items).
        case value(description: String)
    }

    /// Query parameters may be sent as body fields too (form fields, JSON members); body
    /// parameters only in the body.
    enum Place: Sendable, Hashable { case query, body }

    let name: String
    let kind: Kind
    let summary: String
    var place: Place = .query
}

extension RequestParameter {
    static let confidenceThreshold = RequestParameter(
        name: "confidence_threshold", kind: .number(0...1, default: 0.6), summary: "detector score cut-off")
    static let nmsThreshold = RequestParameter(
        name: "nms_threshold", kind: .number(0...1, default: 0.3), summary: "overlap for suppression")
    static let maxFaces = RequestParameter(
        name: "max_faces", kind: .integer(minimum: 1, maximum: nil, default: nil),
        summary: "most faces returned, best first (default and upper bound: FACESOCIAL_MAX_FACES)")
    static let minFaceSize = RequestParameter(
        name: "min_face_size", kind: .number(0...8000, default: 0), summary: "smallest box side in pixels")
    static let detector = RequestParameter(
        name: "detector", kind: .choice(DetectorKind.allCases.map(\.rawValue), default: DetectorKind.yunet.rawValue),
        summary: "face detector")
    static let autoRotate = RequestParameter(
        name: "auto_rotate",
        kind: .choice(RotationSearch.allCases.map(\.rawValue), default: RotationSearch.whenNoFace.rawValue),
        summary:
            "also look in the image turned 90°, 270° and 180°: auto when no face is found and the file has no EXIF "
            + "orientation, true always (faces merged), false never; faces say the rotation that found them")
    static let minQuality = RequestParameter(
        name: "min_quality", kind: .number(0...1, default: 0), summary: "drop faces of lower quality")
    static let livenessThreshold = RequestParameter(
        name: "liveness_threshold", kind: .number(-50...50, default: nil),
        summary: "real-minus-spoof logit margin for is_real (default: FACESOCIAL_LIVENESS_THRESHOLD)")
    static let analyses = RequestParameter(
        name: "analyses", kind: .list(AnalysisKind.allCases.map(\.rawValue)),
        summary: "the analyses per face (default: all but emotion, which is weak and only given when asked for)")
    static let encoding = RequestParameter(
        name: "encoding", kind: .choice(["float", "base64"], default: "float"),
        summary: "embeddings as JSON numbers or base64 float32 little-endian")
    static let verifyThreshold = RequestParameter(
        name: "threshold", kind: .number(-1...1, default: nil),
        summary: "cosine similarity for the same person (default: FACESOCIAL_VERIFY_THRESHOLD)")
    static let livenessCheckThreshold = RequestParameter(
        name: "threshold", kind: .number(-50...50, default: nil),
        summary: "real-minus-spoof logit margin for is_real (default: FACESOCIAL_LIVENESS_THRESHOLD)")
    static let deepfakeThreshold = RequestParameter(
        name: "threshold", kind: .number(0...1, default: nil),
        summary: "probability of a swapped face for is_fake (default: the model's manifest threshold)")
    static let topK = RequestParameter(
        name: "top_k", kind: .integer(minimum: 1, maximum: 100, default: 5), summary: "subjects per face")
    static let matchMode = RequestParameter(
        name: "match_mode", kind: .choice(MatchMode.allCases.map(\.rawValue), default: MatchMode.best.rawValue),
        summary:
            "score a subject by its best face, or by its template (the mean of its faces); best is the default "
            + "by measurement (docs/thresholds.md)")
    static let qualityFilter = RequestParameter(
        name: "quality_filter",
        kind: .choice(QualityFilter.allCases.map(\.rawValue), default: QualityFilter.auto.rawValue),
        summary:
            "refuse faces failing this level's quality checks (auto = medium; none: no check); limits in "
            + "docs/thresholds.md")
    static let enrolMode = RequestParameter(
        name: "mode", kind: .choice(["largest", "all"], default: "largest"), summary: "which faces to enrol")
    static let referenceEmbedding = RequestParameter(
        name: "embedding",
        kind: .value(
            description:
                "the model's embedding (128 numbers for sface, 512 for w600k_mbf), a JSON array or base64 float32, instead of image2"
        ),
        summary: "a reference embedding to compare image1 with", place: .body)
    static let identifyEmbedding = RequestParameter(
        name: "embedding",
        kind: .value(
            description:
                "the collection model's embedding (128 numbers for sface, 512 for w600k_mbf), a JSON array or base64 float32, instead of image"
        ),
        summary: "an embedding to identify (from /v1/embed or an export), made by `model`", place: .body)
    static let embeddingModel = RequestParameter(
        name: "model", kind: .value(description: "sface, or sface@VERSION as answers name it"),
        summary: "the model the embedding came from: required with embedding, and must be the collection's",
        place: .body)
    static let recognitionModel = RequestParameter(
        name: "model", kind: .choice(RecognitionModel.all.map(\.id), default: RecognitionModel.standard.id),
        summary:
            "the recognition model; w600k_mbf (512-d, non-commercial licence) only where the operator opted in "
            + "(FACESOCIAL_ACCEPT_MODEL_LICENCES); embeddings and thresholds of two models never mix")
    static let collectionModel = RequestParameter(
        name: "recognition_model", kind: .choice(RecognitionModel.all.map(\.id), default: RecognitionModel.standard.id),
        summary: "the collection's recognition model, kept for its life (enrol, identify, search and clusters use it)",
        place: .body)
    static let keepUnmatched = RequestParameter(
        name: "keep_unmatched", kind: .choice(["false", "true"], default: "false"),
        summary:
            "keep the faces that match nobody (quality level medium) as unnamed faces in the collection's clusters; "
            + "needs the face:enroll permission")
    static let externalIDs = RequestParameter(
        name: "external_ids", kind: .value(description: "comma-separated, one per image part"),
        summary: "the subject of each image part (multipart); an empty entry, or no field, enrols that image unnamed",
        place: .body)
    static let batchItems = RequestParameter(
        name: "items", kind: .value(description: "objects with external_id, name and a base64 image"),
        summary: "the people to enrol (JSON); an item without external_id enrols every face of its image unnamed",
        place: .body)

    /// The detector options every route that finds faces reads.
    static let detection: [RequestParameter] = [
        .confidenceThreshold, .nmsThreshold, .maxFaces, .minFaceSize, .detector, .autoRotate,
    ]
    /// Detection plus the quality filter: the routes that analyse the faces they find.
    static let faces: [RequestParameter] = detection + [.minQuality]
}

/// Each image route's parameters: what it reads and what the OpenAPI document lists.
enum RouteParameters {
    static let detect = RequestParameter.detection
    static let embed = RequestParameter.faces + [.encoding, .recognitionModel]
    static let verify = RequestParameter.faces + [.verifyThreshold, .referenceEmbedding, .recognitionModel]
    static let liveness = RequestParameter.faces + [.livenessCheckThreshold]
    static let analyze = RequestParameter.faces + [.livenessThreshold, .analyses]
    static let batchAnalyze = analyze
    static let deepfake = RequestParameter.detection + [.deepfakeThreshold]
    static let enrol = RequestParameter.faces + [.enrolMode, .qualityFilter]
    static let batchEnrol = RequestParameter.faces + [.qualityFilter, .externalIDs, .batchItems]
    static let identify =
        RequestParameter.faces + [
            .topK, .verifyThreshold, .matchMode, .identifyEmbedding, .embeddingModel, .keepUnmatched,
        ]
    /// Enrolment without a subject: the faces join the collection's clusters.
    static let enrolUnnamed = enrol
    /// Search by a stored face: no image, so no detection parameters.
    static let faceSearch: [RequestParameter] = [.topK, .verifyThreshold, .matchMode]
}
