import FaceKit
import Foundation
import ModelRuntime
import Vapor

/// The OpenAPI 3.1 description of every route, served at `/openapi.json`. Tests check that every
/// registered route is described and that the responses they see conform to these schemas.
enum OpenAPIDocument {
    // Schema builders keep the document readable as data.
    static var number: [String: Any] { ["type": "number"] }
    static var integer: [String: Any] { ["type": "integer"] }
    static var string: [String: Any] { ["type": "string"] }
    static var boolean: [String: Any] { ["type": "boolean"] }
    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    static func array(_ items: [String: Any]) -> [String: Any] { ["type": "array", "items": items] }
    static func nullable(_ schema: [String: Any]) -> [String: Any] { ["oneOf": [schema, ["type": "null"]]] }
    static func object(_ properties: [String: [String: Any]], required: [String]? = nil) -> [String: Any] {
        ["type": "object", "properties": properties, "required": required ?? Array(properties.keys).sorted()]
    }
    static func map(_ values: [String: Any]) -> [String: Any] { ["type": "object", "additionalProperties": values] }

    static var schemas: [String: Any] {
        [
            "Meta": object([
                "request_id": string, "processing_ms": number, "models": array(string), "model_ms": map(number),
            ]),
            "Error": object([
                "error": object([
                    "code": [
                        "type": "string",
                        "enum": [
                            "INVALID_IMAGE_FORMAT", "NO_FACE_DETECTED", "IMAGE_TOO_LARGE", "MODEL_UNAVAILABLE",
                            "INSUFFICIENT_MEMORY", "QUEUE_FULL", "RATE_LIMIT_EXCEEDED", "UNAUTHORIZED", "FORBIDDEN",
                            "NOT_FOUND", "VALIDATION_FAILED", "METHOD_NOT_ALLOWED", "INTERNAL_ERROR", "CONFLICT",
                            "DATABASE_UNAVAILABLE", "FACE_QUALITY_TOO_LOW", "REQUEST_TIMEOUT", "TOO_MANY_CONNECTIONS",
                        ] + galleryErrorCodes,
                    ],
                    "message": string, "details": map(string),
                ])
            ]),
            "Box": object(["x": number, "y": number, "width": number, "height": number]),
            "Point": object(["x": number, "y": number]),
            "Landmarks": object([
                "right_eye": ref("Point"), "left_eye": ref("Point"), "nose": ref("Point"),
                "mouth_right": ref("Point"), "mouth_left": ref("Point"),
            ]),
            "ImageSize": object(["width": integer, "height": integer]),
            "Pose": object([
                "yaw": number, "pitch": number, "roll": number,
                "source": ["type": "string", "enum": ["landmarks", "mesh"]],
            ]),
            "Rotation": [
                "type": "integer", "enum": [0] + OrientationSearch.turns.sorted(),
                "description": "degrees the image was turned clockwise for the detector to find the face (auto_rotate)",
            ],
            "DetectedFace": object([
                "bbox": ref("Box"), "score": number, "landmarks": ref("Landmarks"), "pose": ref("Pose"),
                "rotation": ref("Rotation"),
            ]),
            "QualityProblem": object([
                "code": ["type": "string", "enum": QualityProblem.Code.allCases.map(\.rawValue)],
                "measure": string, "value": number, "threshold": number,
            ]),
            "Quality": object([
                "score": number, "size": number, "sharpness": number, "yaw": number, "roll": number,
                "brightness": number, "detection_score": number, "edge_margin": number, "parts": map(number),
                "problems": array(ref("QualityProblem")),
            ]),
            "Attributes": object(
                [
                    "age": object(["value": number, "low": number, "high": number]),
                    "gender": object(["value": ["type": "string", "enum": ["male", "female"]], "confidence": number]),
                ], required: []),
            "Liveness": object(["is_real": boolean, "score": number, "probability": number, "threshold": number]),
            "Emotion": object([
                "dominant": ["type": "string", "enum": EmotionClassifier.labels],
                "probabilities": object(
                    Dictionary(uniqueKeysWithValues: EmotionClassifier.labels.map { ($0, number) }),
                    required: EmotionClassifier.labels),
            ]),
            "DenseLandmarks": object(["count": integer, "presence": number, "points": array(array(number))]),
            "Embedding": ["oneOf": [array(number), string]],
            "FaceReport": object(
                [
                    "bbox": ref("Box"), "score": number, "landmarks": ref("Landmarks"), "pose": ref("Pose"),
                    "rotation": ref("Rotation"), "quality": ref("Quality"), "embedding": ref("Embedding"),
                    "attributes": ref("Attributes"),
                    "liveness": ref("Liveness"), "dense_landmarks": ref("DenseLandmarks"), "emotion": ref("Emotion"),
                ], required: ["bbox", "score", "landmarks", "pose", "rotation"]),
            "Detect": object(["faces": array(ref("DetectedFace")), "face_count": integer, "image": ref("ImageSize")]),
            "Analyze": object(["faces": array(ref("FaceReport")), "face_count": integer, "image": ref("ImageSize")]),
            "Embed": object([
                "faces": array(ref("FaceReport")), "face_count": integer, "image": ref("ImageSize"),
                "embedding_model": string, "dimension": integer,
                "encoding": ["type": "string", "enum": ["float", "base64"]],
            ]),
            "VerifyFace": object(["bbox": ref("Box"), "score": number, "quality": ref("Quality")]),
            "Verify": object([
                "similarity": number, "threshold_used": number, "is_same_person": boolean, "model": string,
                "faces": object(["image1": ref("VerifyFace"), "image2": ref("VerifyFace")], required: ["image1"]),
            ]),
            "LivenessCheck": object([
                "is_real": boolean, "score": number, "probability": number, "threshold_used": number,
                "faces": array(ref("FaceReport")), "image": ref("ImageSize"),
            ]),
            "Batch": object([
                "items": array(
                    object(
                        [
                            "index": integer, "data": ref("Analyze"),
                            "error": object(["code": string, "message": string, "details": map(string)]),
                        ], required: ["index"])),
                "succeeded": integer, "failed": integer,
            ]),
            "Deepfake": object([
                "faces": array(
                    object(["bbox": ref("Box"), "score": number, "is_fake": boolean, "probabilities": map(number)])),
                "threshold_used": number, "model": string,
            ]),
            "Health": object(["status": string]),
            "Resident": object(["id": string, "bytes": integer]),
            "Pool": object([
                "name": string, "budget_bytes": integer, "used_bytes": integer, "free_bytes": integer,
                "reserved_bytes": integer, "models": array(ref("Resident")),
            ]),
            "DeviceReading": object(
                [
                    "source": ["type": "string", "enum": ["proc_meminfo", "cgroup", "openvino", "nvml"]],
                    "total_bytes": integer, "used_bytes": integer, "free_bytes": integer, "detail": string,
                ], required: ["source"]),
            "Device": object(
                [
                    "name": string, "kind": ["type": "string", "enum": ["cpu", "openvino", "nvidia"]],
                    "placeable": boolean, "total_bytes": integer, "budget_bytes": integer, "used_bytes": integer,
                    "free_bytes": integer, "pools": array(ref("Pool")), "reading": ref("DeviceReading"),
                    "unavailable_reason": string,
                ],
                required: [
                    "name", "kind", "placeable", "total_bytes", "budget_bytes", "used_bytes", "free_bytes", "pools",
                    "reading",
                ]),
            "Vram": object([
                "devices": array(ref("Device")),
                "nvml": object(["available": boolean, "reason": string], required: ["available"]),
                "engine_devices": array(
                    object(
                        ["device": string, "engine": string, "available": boolean, "reason": string],
                        required: ["device", "engine", "available"])),
            ]),
            "ModelInfo": object([
                "id": string,
                "service": ["type": "string", "enum": ModelManifest.ModelRole.allCases.map(\.rawValue)],
                "version": string,
                "state": ["type": "string", "enum": ["unloaded", "loading", "loaded", "unloading", "failed"]],
                "device": nullable(string), "pool": nullable(string), "bytes": nullable(integer),
                "bytes_source": nullable(["type": "string", "enum": ["device", "rss", "estimate"]]),
                "estimated_bytes": integer, "freed_bytes": nullable(integer),
                "priority": ["type": "string", "enum": ["critical", "high", "standard", "low"]],
                "placement": array(string), "last_used": nullable(string), "uses": integer, "loads": integer,
                "fallbacks": integer, "evictions": integer, "load_ms": nullable(number), "p50_ms": nullable(number),
                "p95_ms": nullable(number), "concurrency": nullable(integer), "max_batch": nullable(integer),
                "running": integer, "queued": integer, "failure": nullable(string),
                "tuning": nullable(ref("ModelTuning")), "licence": string, "licence_opt_in": nullable(string),
                "enabled": boolean,
            ]),
            "ModelTuning": object(
                [
                    "precision": ["type": "string", "enum": ["f32", "bf16", "auto"]],
                    "hint": ["type": "string", "enum": ["LATENCY", "THROUGHPUT"]],
                    "source": ["type": "string", "enum": ["measured", "cached", "settings"]],
                    "cpu": string, "callers": integer, "measured_at": nullable(string),
                    "candidates": array(
                        object(
                            [
                                "precision": string, "hint": string, "latency_ms": number, "throughput_per_s": number,
                                "requests": integer,
                            ], required: ["precision", "hint", "latency_ms", "throughput_per_s", "requests"])),
                ], required: ["precision", "hint", "source", "cpu", "callers", "candidates"]),
            "Models": object(["models": array(ref("ModelInfo"))]),
            "MemoryProfile": object(
                [
                    "rss_bytes": integer, "peak_rss_bytes": integer, "model_bytes": integer, "models": map(integer),
                    "caches": map(integer),
                    "allocator": object([
                        "arena_bytes": integer, "in_use_bytes": integer, "free_bytes": integer, "mmap_bytes": integer,
                        "releasable_bytes": integer,
                    ]),
                    "last_trim_ms": number,
                ], required: ["rss_bytes", "peak_rss_bytes", "model_bytes", "models", "caches"]),
            "Readiness": object([
                "status": ["type": "string", "enum": ["ready", "degraded", "not_ready"]],
                "checks": map(object(["status": string, "detail": string], required: ["status"])),
            ]),
        ]
    }

    /// `{ data: <schema>, meta: Meta }`.
    static var securitySchemas: [String: Any] {
        let nullableString = ["type": ["string", "null"]] as [String: Any]
        return [
            "Tokens": object([
                "access_token": string, "token_type": string, "expires_in": integer, "refresh_token": string,
                "refresh_expires_in": integer,
            ]),
            "Principal": object(
                [
                    "kind": ["type": "string", "enum": ["user", "api_key", "anonymous"]], "id": string,
                    "role": string, "email": string, "permissions": array(string), "collections": array(string),
                ], required: ["kind", "id", "permissions", "collections"]),
            "Revoked": object(["revoked": integer]),
            "User": object(
                [
                    "id": string, "email": string, "role": string, "collections": array(string),
                    "is_active": boolean, "created_at": string,
                ], required: ["id", "email", "role", "collections", "is_active"]),
            "Users": array(ref("User")),
            "APIKey": object(
                [
                    "id": string, "collection_id": string, "name": string, "scopes": array(string), "prefix": string,
                    "created_at": string, "revoked_at": nullableString, "expires_at": nullableString, "key": string,
                ], required: ["id", "collection_id", "name", "scopes", "prefix"]),
            "APIKeys": array(ref("APIKey")),
            "AuditEvent": object(
                [
                    "id": string, "time": string, "actor": string, "actor_type": string, "action": string,
                    "resource_type": string, "resource_id": string,
                    "outcome": ["type": "string", "enum": ["success", "denied", "failure"]], "ip": string,
                    "request_id": string, "details": map(string),
                ],
                required: [
                    "id", "actor", "actor_type", "action", "resource_type", "resource_id", "outcome", "details",
                ]),
            "AuditPage": object([
                "items": array(ref("AuditEvent")), "total": integer, "limit": integer, "offset": integer,
            ]),
            "JWKS": object([
                "keys": array(
                    object(
                        [
                            "kty": string, "kid": string, "alg": string, "use": string, "crv": string, "x": string,
                            "y": string, "n": string, "e": string,
                        ], required: ["kty", "kid", "alg"]))
            ]),
        ]
    }

    static var authErrors: [String: Any] {
        [
            "400": json(ref("Error"), "VALIDATION_FAILED"),
            "401": json(ref("Error"), "UNAUTHORIZED: missing, expired, forged or revoked credentials"),
            "403": json(ref("Error"), "FORBIDDEN: lacks the permission or the collection"),
            "429": json(ref("Error"), "RATE_LIMIT_EXCEEDED, with Retry-After"),
            "503": json(ref("Error"), "DATABASE_UNAVAILABLE (with Retry-After): the database cannot be reached now"),
        ]
    }

    static func operation(
        _ summary: String, _ status: String, _ schema: String, body: [String: Any]? = nil,
        parameters: [[String: Any]] = [], extra: [String: Any] = [:]
    ) -> [String: Any] {
        var op: [String: Any] = [
            "summary": summary, "parameters": parameters,
            "responses": authErrors.merging(extra) { $1 }.merging([status: json(envelope(schema), "success")]) { $1 },
        ]
        if let body { op["requestBody"] = ["required": true, "content": ["application/json": ["schema": body]]] }
        return op
    }

    static var securityPaths: [String: Any] {
        let collection: [String: Any] = [
            "name": "collection", "in": "path", "required": true, "schema": string,
        ]
        let refreshBody = object(["refresh_token": string])
        return [
            "/v1/auth/login": [
                "post": operation(
                    "Sign in; returns a short-lived access JWT and a rotating refresh token", "200", "Tokens",
                    body: object(["email": string, "password": string]))
            ],
            "/v1/auth/refresh": [
                "post": operation(
                    "Rotate a refresh token; reusing an old one revokes its whole family", "200", "Tokens",
                    body: refreshBody)
            ],
            "/v1/auth/logout": [
                "post": operation("Revoke the refresh token's family", "200", "Revoked", body: refreshBody)
            ],
            "/v1/auth/me": ["get": operation("The calling principal", "200", "Principal")],
            "/v1/users": [
                "get": operation("Every user (admin:users)", "200", "Users"),
                "post": operation(
                    "Create a user (admin:users)", "201", "User",
                    body: object(
                        ["email": string, "password": string, "role": string, "collections": array(string)],
                        required: ["email", "password", "role"]),
                    extra: ["409": json(ref("Error"), "CONFLICT: the email exists")]),
            ],
            "/v1/users/{user_id}": [
                "patch": operation(
                    "Change a user's role, collections, password or active flag; disabling or a new password "
                        + "revokes the user's refresh tokens (admin:users)", "200", "User",
                    body: object(
                        [
                            "role": string, "collections": array(string), "is_active": ["type": "boolean"],
                            "password": string,
                        ], required: []),
                    parameters: [["name": "user_id", "in": "path", "required": true, "schema": string]],
                    extra: [
                        "404": json(ref("Error"), "NOT_FOUND"),
                        "409": json(ref("Error"), "CONFLICT: the last active admin cannot be disabled or demoted"),
                    ])
            ],
            "/v1/collections/{collection}/api-keys": [
                "get": operation(
                    "The collection's API keys, without key material (collections:read)", "200", "APIKeys",
                    parameters: [collection]),
                "post": operation(
                    "Create an API key for the collection; the key is shown once (collections:write)", "201",
                    "APIKey", body: object(["name": string, "scopes": array(string), "expires_at": string]),
                    parameters: [collection]),
            ],
            "/v1/collections/{collection}/api-keys/{key_id}": [
                "delete": operation(
                    "Revoke an API key (collections:write)", "200", "APIKey",
                    parameters: [
                        collection, ["name": "key_id", "in": "path", "required": true, "schema": string],
                    ], extra: ["404": json(ref("Error"), "NOT_FOUND")])
            ],
            "/v1/audit": [
                "get": operation(
                    "The audit log, newest first (admin:system)", "200", "AuditPage",
                    parameters: [
                        parameter("actor", string, "user id, API key id or anonymous"),
                        parameter("action", string, "exact action, or a prefix ending in *"),
                        parameter("resource_type", string, "e.g. user, collection, api_key"),
                        parameter("resource_id", string, "the resource's id"),
                        parameter("outcome", ["type": "string", "enum": ["success", "denied", "failure"]], ""),
                        parameter("since", string, "ISO 8601 time, inclusive"),
                        parameter("until", string, "ISO 8601 time, exclusive"),
                        parameter("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "page size"),
                        parameter("offset", ["type": "integer", "minimum": 0], "rows to skip"),
                    ])
            ],
            "/.well-known/jwks.json": [
                "get": [
                    "summary": "Public verification keys (HMAC secrets are never published)",
                    "responses": [
                        "200": [
                            "description": "JWKS",
                            "content": [
                                "application/jwk-set+json": ["schema": ref("JWKS")],
                                "application/json": ["schema": ref("JWKS")],
                            ],
                        ]
                    ],
                ]
            ],
        ]
    }

    static func envelope(_ name: String) -> [String: Any] {
        object(["data": ref(name), "meta": ref("Meta")])
    }

    static func json(_ schema: [String: Any], _ description: String) -> [String: Any] {
        ["description": description, "content": ["application/json": ["schema": schema]]]
    }

    static var errorResponses: [String: Any] {
        [
            "400": json(ref("Error"), "VALIDATION_FAILED: a missing or out-of-range parameter"),
            "413": json(ref("Error"), "IMAGE_TOO_LARGE"),
            "422": json(ref("Error"), "INVALID_IMAGE_FORMAT or NO_FACE_DETECTED"),
            "503": json(
                ref("Error"),
                "MODEL_UNAVAILABLE, INSUFFICIENT_MEMORY (fits in no pool), or QUEUE_FULL (with Retry-After)"),
            "401": json(
                ref("Error"), "UNAUTHORIZED: credentials missing (outside anonymous development mode) or invalid"),
            "403": json(ref("Error"), "FORBIDDEN: lacks face:analyze"),
            "429": json(ref("Error"), "RATE_LIMIT_EXCEEDED, with Retry-After"),
            "409": json(
                ref("Error"),
                "MODEL_LICENCE_NOT_ACCEPTED: the model named (model) is under a restricted licence this server was "
                    + "not opted into"),
        ]
    }

    static func parameter(_ name: String, _ schema: [String: Any], _ description: String) -> [String: Any] {
        ["name": name, "in": "query", "required": false, "schema": schema, "description": description]
    }

    /// A declared request parameter's schema: the same declaration the route reads it by.
    static func schema(_ parameter: RequestParameter) -> [String: Any] {
        switch parameter.kind {
        case .number(let range, let fallback):
            var schema: [String: Any] = ["type": "number", "minimum": range.lowerBound, "maximum": range.upperBound]
            if let fallback { schema["default"] = fallback }
            return schema
        case .integer(let minimum, let maximum, let fallback):
            var schema: [String: Any] = ["type": "integer", "minimum": minimum]
            if let maximum { schema["maximum"] = maximum }
            if let fallback { schema["default"] = fallback }
            return schema
        case .choice(let choices, let fallback):
            return ["type": "string", "enum": choices, "default": fallback]
        case .list(let names):
            return [
                "type": "string",
                "description": "comma-separated (or a JSON array) of: " + names.joined(separator: ", "),
            ]
        case .value(let description):
            return ["description": description]
        }
    }

    /// The query parameters of an image route, from its `RouteParameters` entry.
    static func parameters(_ declared: [RequestParameter]) -> [[String: Any]] {
        declared.filter { $0.place == .query }.map { parameter($0.name, schema($0), $0.summary) }
    }

    /// Images as multipart, raw bytes or base64 JSON; parameters may also be body fields.
    /// `declared`'s body parameters join the images as properties.
    static func imageBody(_ fields: [String], declared: [RequestParameter] = []) -> [String: Any] {
        var multipart: [String: Any] = [:]
        var base64: [String: Any] = [:]
        for field in fields {
            multipart[field] = ["type": "string", "contentMediaType": "application/octet-stream"]
            base64[field] = ["type": "string", "contentEncoding": "base64"]
        }
        for parameter in declared where parameter.place == .body {
            multipart[parameter.name] = schema(parameter).merging(["description": parameter.summary]) { $1 }
            base64[parameter.name] = multipart[parameter.name]
        }
        var content: [String: Any] = [
            "multipart/form-data": ["schema": ["type": "object", "properties": multipart, "required": fields]],
            "application/json": ["schema": ["type": "object", "properties": base64, "required": fields]],
        ]
        if fields == ["image"] {
            for type in [
                "image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "application/octet-stream",
            ] {
                content[type] = ["schema": ["type": "string", "contentMediaType": type]]
            }
        }
        return ["required": true, "content": content]
    }

    static func post(
        _ summary: String, _ schema: String, body: [String: Any], parameters: [[String: Any]]
    ) -> [String: Any] {
        [
            "post": [
                "summary": summary, "parameters": parameters, "requestBody": body,
                "responses": errorResponses.merging(["200": json(envelope(schema), "success")]) { $1 },
            ]
        ]
    }

    static func get(_ summary: String, _ schema: String) -> [String: Any] {
        ["get": ["summary": summary, "responses": ["200": json(envelope(schema), "success")]]]
    }

    /// A `/system/models/{id}/…` action answering the model's new state.
    static func system(
        _ summary: String, extra: [[String: Any]] = [], responses more: [String: Any] = [:]
    ) -> [String: Any] {
        let id: [String: Any] = [
            "name": "id", "in": "path", "required": true, "schema": string, "description": "model id",
        ]
        return [
            "post": [
                "summary": summary, "parameters": [id] + extra,
                "responses": [
                    "200": json(envelope("ModelInfo"), "the model's state afterwards"),
                    "400": json(ref("Error"), "VALIDATION_FAILED: an unknown device or pool"),
                    "404": json(ref("Error"), "NOT_FOUND: no such model"),
                    "409": json(
                        ref("Error"),
                        "MODEL_LICENCE_NOT_ACCEPTED: a restricted licence this server was not opted into; or a "
                            + "pinned model (unload)"),
                    "503": json(ref("Error"), "INSUFFICIENT_MEMORY or MODEL_UNAVAILABLE"),
                ].merging(more) { _, new in new },
            ]
        ]
    }

    static var paths: [String: Any] {
        [
            "/v1/detect": post(
                "Detect faces with boxes, scores and five landmarks", "Detect", body: imageBody(["image"]),
                parameters: parameters(RouteParameters.detect)),
            "/v1/embed": post(
                "An L2-normalised embedding per face: 128-d SFace by default, 512-d w600k_mbf with model=w600k_mbf "
                    + "where the operator opted into its licence", "Embed", body: imageBody(["image"]),
                parameters: parameters(RouteParameters.embed)),
            "/v1/verify": post(
                "1:1 verification of two images, or an image and an embedding", "Verify",
                body: imageBody(["image1", "image2"], declared: RouteParameters.verify),
                parameters: parameters(RouteParameters.verify)),
            "/v1/liveness": post(
                "Passive liveness (anti-spoofing) of the largest face, and of every face", "LivenessCheck",
                body: imageBody(["image"]), parameters: parameters(RouteParameters.liveness)),
            "/v1/analyze": post(
                "One detection, then the requested analyses per face", "Analyze", body: imageBody(["image"]),
                parameters: parameters(RouteParameters.analyze)),
            "/v1/batch/analyze": post(
                "Analyze several images; one result or error per item", "Batch",
                body: [
                    "required": true,
                    "content": [
                        "multipart/form-data": ["schema": ["type": "object"]],
                        "application/json": [
                            "schema": object(["images": array(["type": "string", "contentEncoding": "base64"])])
                        ],
                    ],
                ],
                parameters: parameters(RouteParameters.batchAnalyze)),
            "/v1/deepfake": post(
                "Face-swap detection by an operator-installed model (503 until one is installed)", "Deepfake",
                body: imageBody(["image"]), parameters: parameters(RouteParameters.deepfake)),
            "/health": [
                "get": [
                    "summary": "Liveness: the process serves HTTP",
                    "responses": ["200": json(envelope("Health"), "alive")],
                ]
            ],
            "/health/ready": [
                "get": [
                    "summary": "Readiness: database, cache and pinned models",
                    "responses": [
                        "200": json(envelope("Readiness"), "ready"),
                        "503": json(envelope("Readiness"), "not ready; the failing checks are named"),
                    ],
                ]
            ],
            "/system/vram": get("Memory per device and pool: total, budget, used, free, resident models", "Vram"),
            "/system/models": get(
                "Every model: state, device and pool, bytes, priority, uses, fallbacks, evictions, latency", "Models"),
            "/system/models/{id}/load": system(
                "Load a model now, optionally on a device or pool (device=CPU or CPU:high)",
                extra: [parameter("device", string, "DEVICE or DEVICE:pool; default: the model's placement order")]),
            "/system/models/{id}/unload": system(
                "Unload a model and give its memory back",
                responses: ["409": json(ref("Error"), "CONFLICT: a pinned (critical or preloaded) model stays loaded")]),
            "/system/memory-profile": get(
                "Process memory: RSS, peak, per-model bytes, caches, allocator statistics", "MemoryProfile"),
            "/metrics": [
                "get": [
                    "summary": "Prometheus metrics (text exposition format)",
                    "responses": [
                        "200": [
                            "description": "metrics",
                            "content": ["text/plain": ["schema": ["type": "string"]]],
                        ]
                    ],
                ]
            ],
            "/openapi.json": [
                "get": [
                    "summary": "This document",
                    "responses": ["200": json(["type": "object"], "the OpenAPI 3.1 document")],
                ]
            ],
        ].merging(consolePaths) { $1 }
    }

    /// The web console's page and files (Console/ConsoleRoutes.swift, docs/console.md).
    static var consolePaths: [String: Any] {
        let page: [String: Any] = ["text/html": ["schema": ["type": "string"]]]
        return [
            "/console": [
                "get": [
                    "summary":
                        "The web console (HTML, open to all: its pages call the API with the user's token)",
                    "responses": ["200": ["description": "the console's page", "content": page]],
                ]
            ],
            "/console/{file}": [
                "get": [
                    "summary": "One of the console's files: its page, styles, JavaScript modules and icon",
                    "parameters": [
                        [
                            "name": "file", "in": "path", "required": true,
                            "schema": ["type": "string", "pattern": Console.namePattern],
                        ]
                    ],
                    "responses": [
                        "200": [
                            "description": "the file",
                            "content": page.merging([
                                "text/css": ["schema": ["type": "string"]],
                                "text/javascript": ["schema": ["type": "string"]],
                                "image/svg+xml": ["schema": ["type": "string"]],
                            ]) { $1 },
                        ],
                        "404": json(ref("Error"), "NOT_FOUND: no such console file"),
                    ],
                ]
            ],
        ]
    }

    static var document: [String: Any] {
        [
            "openapi": "3.1.0",
            "info": [
                "title": "FaceSocial API", "version": "1.0.0",
                "description": "Self-hosted face detection, recognition, attributes and liveness.",
            ],
            "paths": paths.merging(securityPaths) { $1 }.merging(galleryPaths) { $1 },
            "components": [
                "schemas": schemas.merging(securitySchemas) { $1 }.merging(gallerySchemas) { $1 },
                "securitySchemes": [
                    "bearer": ["type": "http", "scheme": "bearer", "bearerFormat": "JWT"],
                    "apiKey": ["type": "apiKey", "in": "header", "name": "x-api-key"],
                ],
            ],
            "security": [["bearer": [String]()], ["apiKey": [String]()], [String: [String]]()],
        ]
    }

    static func data() throws -> Data {
        try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
    }
}

struct OpenAPIRoutes: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let body = try OpenAPIDocument.data()
        routes.get("openapi.json") { _ -> Response in
            Response(status: .ok, headers: ["Content-Type": "application/json"], body: .init(data: body))
        }
    }
}
