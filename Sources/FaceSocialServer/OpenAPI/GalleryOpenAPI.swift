import FaceSearch
import Foundation

/// The gallery part of the OpenAPI document: collections, subjects, enrolment, identify and the
/// privacy routes.
extension OpenAPIDocument {
    static var galleryErrorCodes: [String] {
        [
            "DUPLICATE_IMAGE", "ALREADY_EXISTS", "EMBEDDING_MODEL_MISMATCH", "IDEMPOTENCY_KEY_REUSED",
            "IDEMPOTENCY_IN_PROGRESS", "MODEL_LICENCE_NOT_ACCEPTED",
        ]
    }

    /// One result per item, of a batch enrolment or an enrolment job.
    static var gallerySchemaBatchItems: [String: Any] {
        array(
            object(
                [
                    "index": integer, "external_id": string, "data": ref("Enrol"), "unnamed": ref("UnnamedEnrol"),
                    "error": object(["code": string, "message": string, "details": map(string)]),
                ], required: ["index"]))
    }

    static var gallerySchemas: [String: Any] {
        let time: [String: Any] = ["type": "string", "format": "date-time"]
        let matchMode: [String: Any] = ["type": "string", "enum": MatchMode.allCases.map(\.rawValue)]
        return [
            "Collection": object(
                [
                    "id": string, "name": string, "description": string, "created_at": time,
                    "subject_count": integer, "face_count": integer,
                    "recognition_model": ["type": "string", "enum": RecognitionModel.all.map(\.id)],
                ], required: ["id", "name", "recognition_model"]),
            "CollectionList": object(["items": array(ref("Collection"))]),
            "StoredFace": object(
                [
                    "id": string, "subject_id": string, "embedding_model": string, "quality": number,
                    "bbox": ref("Box"), "created_at": time,
                ], required: ["id", "subject_id", "embedding_model", "quality", "bbox"]),
            "Subject": object(
                [
                    "id": string, "collection_id": string, "external_id": string, "name": string,
                    "metadata": ["type": "object"], "created_at": time, "updated_at": time, "face_count": integer,
                    "faces": array(ref("StoredFace")),
                ], required: ["id", "collection_id", "external_id", "name", "metadata"]),
            "SubjectPage": object([
                "items": array(ref("Subject")), "total": integer, "limit": integer, "offset": integer,
            ]),
            "Enrol": object([
                "subject_id": string, "faces": array(ref("StoredFace")), "faces_detected": integer,
                "unindexed_faces": array(object(["bbox": ref("Box"), "reasons": array(ref("QualityProblem"))])),
            ]),
            "BatchEnrol": object(["items": gallerySchemaBatchItems, "succeeded": integer, "failed": integer]),
            "EnrolJob": object(
                [
                    "id": string, "collection_id": string, "state": ["type": "string", "enum": ["running", "done"]],
                    "total": integer, "succeeded": integer, "failed": integer, "pending": integer,
                    "items": gallerySchemaBatchItems, "created_at": time, "finished_at": time,
                ], required: ["id", "collection_id", "state", "total", "succeeded", "failed", "pending", "items"]),
            "Deleted": object(["id": string, "deleted": boolean, "faces_erased": integer]),
            "Candidate": object([
                "subject_id": string, "external_id": string, "name": string, "similarity": number,
                "is_match": boolean, "face_id": string,
            ]),
            // With an embedding instead of an image: one face without bbox, score and quality, and no image.
            "Identify": object(
                [
                    "faces": array(
                        object(
                            [
                                "bbox": ref("Box"), "score": number, "quality": number, "unknown": boolean,
                                "matches": array(ref("Candidate")), "kept": ref("UnnamedFace"),
                            ], required: ["unknown", "matches"])),
                    "face_count": integer, "threshold_used": number, "top_k": integer, "match_mode": matchMode,
                    "model": string, "gallery_size": integer, "image": ref("ImageSize"),
                ],
                required: ["faces", "face_count", "threshold_used", "top_k", "match_mode", "model", "gallery_size"]),
            "FaceSearch": object([
                "face_id": string, "subject_id": string, "unknown": boolean, "matches": array(ref("Candidate")),
                "threshold_used": number, "top_k": integer, "match_mode": matchMode, "model": string,
                "gallery_size": integer,
            ]),
            "UnnamedFace": object(
                [
                    "id": string, "cluster_id": string, "embedding_model": string, "quality": number,
                    "bbox": ref("Box"), "source": ["type": "string", "enum": ["enrol", "identify"]], "created_at": time,
                ], required: ["id", "cluster_id", "embedding_model", "quality", "bbox", "source"]),
            "Cluster": object(
                ["id": string, "size": integer, "faces": array(ref("UnnamedFace"))], required: ["id", "size", "faces"]),
            "ClusterFaceErased": object(
                [
                    "id": string, "deleted": boolean,
                    "clusters": array(object(["id": string, "size": integer], required: ["id", "size"])),
                ], required: ["id", "deleted", "clusters"]),
            "ClusterPage": object(
                ["items": array(ref("Cluster")), "total": integer, "limit": integer, "offset": integer],
                required: ["items", "total", "limit", "offset"]),
            "UnnamedEnrol": object(
                [
                    "faces": array(
                        object(["face": ref("UnnamedFace"), "merged": array(string)], required: ["face", "merged"])),
                    "faces_detected": integer,
                    "unindexed_faces": array(object(["bbox": ref("Box"), "reasons": array(ref("QualityProblem"))])),
                ], required: ["faces", "faces_detected", "unindexed_faces"]),
            "AssignedCluster": object(
                ["cluster_id": string, "subject": ref("Subject"), "faces_moved": integer],
                required: ["cluster_id", "subject", "faces_moved"]),
            "SubjectExport": object([
                "subject": ref("Subject"), "collection": ref("Collection"),
                "faces": array(
                    object([
                        "face": ref("StoredFace"), "embedding": array(number), "key_id": string,
                        "image_sha256": string,
                    ])),
                "audit": array(
                    object(
                        [
                            "action": string, "actor": string, "outcome": string, "request_id": string,
                            "created_at": time,
                        ],
                        required: ["action", "actor", "outcome"])),
                "exported_at": time,
            ]),
        ]
    }

    static func pathParameter(_ name: String, _ description: String) -> [String: Any] {
        [
            "name": name, "in": "path", "required": true, "schema": ["type": "string", "format": "uuid"],
            "description": description,
        ]
    }

    static var collectionParameter: [String: Any] { pathParameter("collection", "collection id") }
    static var subjectParameter: [String: Any] { pathParameter("subject", "subject id") }
    static var clusterParameter: [String: Any] { pathParameter("cluster", "cluster id") }
    /// `Idempotency-Key` (Gallery/IdempotentRequests.swift) on the routes that store faces.
    static var idempotencyKeyParameter: [String: Any] {
        [
            "name": IdempotentRequests.header, "in": "header", "required": false,
            "schema": ["type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"],
            "description":
                "a retry with the same key and request answers the first answer (Idempotent-Replayed: true) "
                + "instead of enrolling twice; kept 24 hours",
        ]
    }
    /// The items of a batch enrolment or an enrolment job.
    static var batchEnrolBody: [String: Any] {
        [
            "required": true,
            "content": [
                "application/json": [
                    "schema": object([
                        "items": array(
                            object(
                                [
                                    "external_id": [
                                        "type": "string",
                                        "description":
                                            "the subject (created when missing); without it every face of the image "
                                            + "is enrolled unnamed into the clusters",
                                    ],
                                    "name": string,
                                    "image": ["type": "string", "contentEncoding": "base64"],
                                ], required: ["image"]))
                    ])
                ],
                "multipart/form-data": [
                    "schema": object([
                        "external_ids": [
                            "type": "string",
                            "description": "one id per image part, in order; an empty one enrols that image unnamed",
                        ]
                    ])
                ],
            ],
        ]
    }
    static let idempotencyErrors = [
        "409": "IDEMPOTENCY_IN_PROGRESS: the first request with this Idempotency-Key still runs (Retry-After)",
        "422": "IDEMPOTENCY_KEY_REUSED: the key was used with another request",
    ]

    static func galleryOperation(
        _ summary: String, _ schema: String, status: String = "200", parameters: [[String: Any]] = [],
        body: [String: Any]? = nil, errors: [String: String] = [:]
    ) -> [String: Any] {
        var responses: [String: Any] = [status: json(envelope(schema), "success")]
        for (code, description) in errors { responses[code] = json(ref("Error"), description) }
        responses["404"] = json(ref("Error"), "NOT_FOUND: no such collection, subject or face")
        responses["401"] = json(ref("Error"), "UNAUTHORIZED: no or bad credentials")
        responses["403"] = json(ref("Error"), "FORBIDDEN: lacks the permission or the collection")
        responses["429"] = json(ref("Error"), "RATE_LIMIT_EXCEEDED, with Retry-After")
        // Every gallery route reads or writes the database.
        let unavailable = "DATABASE_UNAVAILABLE (with Retry-After): the database cannot be reached now"
        if let existing = errors["503"] {
            responses["503"] = json(ref("Error"), "\(existing), or \(unavailable)")
        } else {
            responses["503"] = json(ref("Error"), unavailable)
        }
        var operation: [String: Any] = ["summary": summary, "parameters": parameters, "responses": responses]
        if let body { operation["requestBody"] = body }
        return operation
    }

    static func jsonBody(_ schema: [String: Any]) -> [String: Any] {
        ["required": true, "content": ["application/json": ["schema": schema]]]
    }

    static var galleryPaths: [String: Any] {
        let subjectBody: [String: Any] = [
            "type": "object",
            "properties": ["external_id": string, "name": string, "metadata": ["type": "object"]],
        ]
        let faceErrors = [
            "400": "VALIDATION_FAILED", "413": "IMAGE_TOO_LARGE", "422": "INVALID_IMAGE_FORMAT or NO_FACE_DETECTED",
            "503": "MODEL_UNAVAILABLE",
        ]
        return [
            "/v1/collections": [
                "post": galleryOperation(
                    "Create a collection (a tenant's gallery)", "Collection", status: "201",
                    body: jsonBody(
                        object(
                            [
                                "name": string, "description": string,
                                "recognition_model": [
                                    "type": "string", "enum": RecognitionModel.all.map(\.id),
                                    "description":
                                        "the recognizer, kept for the collection's life (default sface); w600k_mbf "
                                        + "needs the operator's opt-in to its non-commercial licence",
                                ],
                            ], required: ["name"])),
                    errors: [
                        "400": "VALIDATION_FAILED",
                        "409": "ALREADY_EXISTS: the name is taken; or MODEL_LICENCE_NOT_ACCEPTED: recognition_model "
                            + "is under a licence this server was not opted into",
                    ]),
                "get": galleryOperation("List collections", "CollectionList"),
            ],
            "/v1/collections/{collection}": [
                "get": galleryOperation(
                    "A collection with its subject and face counts", "Collection", parameters: [collectionParameter]),
                "delete": galleryOperation(
                    "Delete a collection with every subject and embedding in it (audited)", "Deleted",
                    parameters: [collectionParameter]),
            ],
            "/v1/collections/{collection}/subjects": [
                "post": galleryOperation(
                    "Create a subject", "Subject", status: "201", parameters: [collectionParameter],
                    body: jsonBody(subjectBody.merging(["required": ["external_id"]]) { $1 }),
                    errors: ["400": "VALIDATION_FAILED", "409": "ALREADY_EXISTS: the external_id is taken"]),
                "get": galleryOperation(
                    "List subjects in creation order, a page at a time", "SubjectPage",
                    parameters: [
                        collectionParameter,
                        parameter("limit", ["type": "integer", "minimum": 1, "maximum": 500], "page size (50)"),
                        parameter("offset", ["type": "integer", "minimum": 0], "subjects to skip"),
                    ], errors: ["400": "VALIDATION_FAILED"]),
            ],
            "/v1/collections/{collection}/subjects/{subject}": [
                "get": galleryOperation(
                    "A subject with its enrolled faces (never the embeddings)", "Subject",
                    parameters: [collectionParameter, subjectParameter]),
                "patch": galleryOperation(
                    "Rename a subject, or change its external id or metadata", "Subject",
                    parameters: [collectionParameter, subjectParameter], body: jsonBody(subjectBody),
                    errors: ["400": "VALIDATION_FAILED", "409": "ALREADY_EXISTS"]),
                "delete": galleryOperation(
                    "Erase a subject: its embeddings, its index entries and cached results (audited)", "Deleted",
                    parameters: [collectionParameter, subjectParameter]),
            ],
            "/v1/collections/{collection}/subjects/{subject}/export": [
                "get": galleryOperation(
                    "Everything stored about a subject, embeddings decrypted (audited)", "SubjectExport",
                    parameters: [collectionParameter, subjectParameter])
            ],
            "/v1/collections/{collection}/subjects/{subject}/faces": [
                "post": galleryOperation(
                    "Enrol the largest face (mode=largest) or every face (mode=all) of an image; stores embeddings only",
                    "Enrol", status: "201",
                    parameters: [collectionParameter, subjectParameter, idempotencyKeyParameter]
                        + parameters(RouteParameters.enrol),
                    body: imageBody(["image"]),
                    errors: faceErrors.merging([
                        "409": "DUPLICATE_IMAGE: this image is already enrolled; or IDEMPOTENCY_IN_PROGRESS",
                        "422": "INVALID_IMAGE_FORMAT, NO_FACE_DETECTED, or FACE_QUALITY_TOO_LOW: no face passed "
                            + "quality_filter (details.reasons lists the failed checks); or IDEMPOTENCY_KEY_REUSED",
                    ]) { $1 })
            ],
            "/v1/collections/{collection}/subjects/{subject}/faces/{face}": [
                "delete": galleryOperation(
                    "Delete one enrolled face", "Deleted",
                    parameters: [collectionParameter, subjectParameter, pathParameter("face", "face id")])
            ],
            "/v1/collections/{collection}/batch/enroll": [
                "post": galleryOperation(
                    "Enrol several people: subjects are created when missing; one result or error per item",
                    "BatchEnrol",
                    parameters: [collectionParameter, idempotencyKeyParameter] + parameters(RouteParameters.batchEnrol),
                    body: batchEnrolBody,
                    errors: idempotencyErrors.merging(["400": "VALIDATION_FAILED", "413": "IMAGE_TOO_LARGE"]) { $1 })
            ],
            "/v1/collections/{collection}/jobs/enroll": [
                "post": galleryOperation(
                    "Bulk enrolment as a job: answers 202 with the job at once (Location: the job), the items run "
                        + "in the background, two at a time; the same items as batch/enroll",
                    "EnrolJob", status: "202",
                    parameters: [collectionParameter, idempotencyKeyParameter] + parameters(RouteParameters.batchEnrol),
                    body: batchEnrolBody,
                    errors: idempotencyErrors.merging(["400": "VALIDATION_FAILED", "413": "IMAGE_TOO_LARGE"]) { $1 })
            ],
            "/v1/collections/{collection}/jobs/{job}": [
                "get": galleryOperation(
                    "A bulk enrolment job: state, counts and each finished item's result; waiting items of a job "
                        + "whose instance stopped are failed (JOB_INSTANCE_LOST), never enrolled later",
                    "EnrolJob", parameters: [collectionParameter, pathParameter("job", "job id")])
            ],
            "/v1/collections/{collection}/identify": [
                "post": galleryOperation(
                    "1:N identification: for each face, the top-k subjects and an unknown flag; or, with "
                        + "`embedding` and `model` instead of an image, the top-k subjects of that embedding",
                    "Identify", parameters: [collectionParameter] + parameters(RouteParameters.identify),
                    body: imageBody(["image"], declared: RouteParameters.identify), errors: faceErrors)
            ],
            "/v1/collections/{collection}/faces": [
                "post": galleryOperation(
                    "Enrol faces without a subject: each joins the cluster of the faces it resembles (a new one "
                        + "when none does, merging clusters it links); stores embeddings only",
                    "UnnamedEnrol", status: "201",
                    parameters: [collectionParameter, idempotencyKeyParameter]
                        + parameters(RouteParameters.enrolUnnamed),
                    body: imageBody(["image"]),
                    errors: faceErrors.merging([
                        "409":
                            "DUPLICATE_IMAGE: this image's faces are already in the clusters; or IDEMPOTENCY_IN_PROGRESS",
                        "422":
                            "INVALID_IMAGE_FORMAT, NO_FACE_DETECTED, FACE_QUALITY_TOO_LOW, or IDEMPOTENCY_KEY_REUSED",
                    ]) { $1 })
            ],
            "/v1/collections/{collection}/clusters": [
                "get": galleryOperation(
                    "The clusters of unnamed faces, largest first, each with its best faces", "ClusterPage",
                    parameters: [
                        collectionParameter,
                        parameter("limit", ["type": "integer", "minimum": 1, "maximum": 500], "page size (50)"),
                        parameter("offset", ["type": "integer", "minimum": 0], "clusters to skip"),
                        parameter("min_size", ["type": "integer", "minimum": 1], "smallest cluster listed (1)"),
                        parameter(
                            "faces", ["type": "integer", "minimum": 0, "maximum": 100],
                            "faces shown per cluster, best quality first (\(ClusterRoutes.facesPerCluster))"),
                    ], errors: ["400": "VALIDATION_FAILED"])
            ],
            "/v1/collections/{collection}/clusters/{cluster}": [
                "get": galleryOperation(
                    "A cluster with all its faces, best quality first", "Cluster",
                    parameters: [collectionParameter, clusterParameter]),
                "delete": galleryOperation(
                    "Erase a cluster's faces (audited)", "Deleted", parameters: [collectionParameter, clusterParameter]),
            ],
            "/v1/collections/{collection}/clusters/{cluster}/faces/{face}": [
                "delete": galleryOperation(
                    "Erase one face of a cluster (a wrong face in a group, audited); the others are grouped again, "
                        + "so the cluster splits where that face was their only link (the largest part keeps the id)",
                    "ClusterFaceErased",
                    parameters: [collectionParameter, clusterParameter, pathParameter("face", "unnamed face id")])
            ],
            "/v1/collections/{collection}/clusters/{cluster}/assign": [
                "post": galleryOperation(
                    "Name a cluster: its faces move to an existing subject (subject_id) or to a new one "
                        + "(external_id, name, metadata) and are searched at once (audited)",
                    "AssignedCluster", parameters: [collectionParameter, clusterParameter],
                    body: jsonBody(
                        object([
                            "subject_id": ["type": "string", "format": "uuid"], "external_id": string, "name": string,
                            "metadata": ["type": "object"],
                        ])),
                    errors: [
                        "400": "VALIDATION_FAILED: neither or both of subject_id and external_id",
                        "409": "ALREADY_EXISTS: the external_id is taken (send its subject_id)",
                    ])
            ],
            "/v1/collections/{collection}/faces/{face}/search": [
                "post": galleryOperation(
                    "The top-k subjects nearest to a stored face (its own subject left out): look-alikes and "
                        + "possible duplicates; no image is sent (audited: it reads a stored embedding)",
                    "FaceSearch",
                    parameters: [collectionParameter, pathParameter("face", "face id")]
                        + parameters(RouteParameters.faceSearch),
                    errors: [
                        "400": "VALIDATION_FAILED",
                        "409": "EMBEDDING_MODEL_MISMATCH: the face was enrolled with another model than the "
                            + "collection searches with",
                    ])
            ],
        ]
    }
}
