import Foundation
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
            "Meta": object(["request_id": string, "processing_ms": number, "models": array(string)]),
            "Error": object([
                "error": object([
                    "code": [
                        "type": "string",
                        "enum": [
                            "INVALID_IMAGE_FORMAT", "NO_FACE_DETECTED", "IMAGE_TOO_LARGE", "MODEL_UNAVAILABLE",
                            "INSUFFICIENT_MEMORY", "QUEUE_FULL", "RATE_LIMIT_EXCEEDED", "UNAUTHORIZED", "FORBIDDEN",
                            "NOT_FOUND", "VALIDATION_FAILED", "METHOD_NOT_ALLOWED", "INTERNAL_ERROR",
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
            "DetectedFace": object(["bbox": ref("Box"), "score": number, "landmarks": ref("Landmarks")]),
            "Quality": object([
                "score": number, "size": number, "sharpness": number, "yaw": number, "roll": number,
                "brightness": number, "parts": map(number),
            ]),
            "Attributes": object(
                [
                    "age": object(["value": number, "low": number, "high": number]),
                    "gender": object(["value": ["type": "string", "enum": ["male", "female"]], "confidence": number]),
                ], required: []),
            "Liveness": object(["is_real": boolean, "score": number, "probability": number, "threshold": number]),
            "DenseLandmarks": object(["count": integer, "presence": number, "points": array(array(number))]),
            "Embedding": ["oneOf": [array(number), string]],
            "FaceReport": object(
                [
                    "bbox": ref("Box"), "score": number, "landmarks": ref("Landmarks"), "quality": ref("Quality"),
                    "embedding": ref("Embedding"), "attributes": ref("Attributes"), "liveness": ref("Liveness"),
                    "dense_landmarks": ref("DenseLandmarks"),
                ], required: ["bbox", "score", "landmarks"]),
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
            "Readiness": object([
                "status": ["type": "string", "enum": ["ready", "not_ready"]],
                "checks": map(object(["status": string, "detail": string], required: ["status"])),
            ]),
        ]
    }

    /// `{ data: <schema>, meta: Meta }`.
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
            "503": json(ref("Error"), "MODEL_UNAVAILABLE"),
        ]
    }

    static func parameter(_ name: String, _ schema: [String: Any], _ description: String) -> [String: Any] {
        ["name": name, "in": "query", "required": false, "schema": schema, "description": description]
    }

    static var detectionParameters: [[String: Any]] {
        [
            parameter(
                "confidence_threshold", ["type": "number", "minimum": 0, "maximum": 1], "detector score cut-off"),
            parameter("nms_threshold", ["type": "number", "minimum": 0, "maximum": 1], "overlap for suppression"),
            parameter("max_faces", ["type": "integer", "minimum": 1], "most faces returned, best first"),
            parameter("min_face_size", ["type": "number", "minimum": 0], "smallest box side in pixels"),
            parameter("detector", ["type": "string", "enum": ["yunet", "retinaface"]], "face detector"),
            parameter("min_quality", ["type": "number", "minimum": 0, "maximum": 1], "drop faces of lower quality"),
        ]
    }

    /// Images as multipart, raw bytes or base64 JSON; parameters may also be body fields.
    static func imageBody(_ fields: [String]) -> [String: Any] {
        var multipart: [String: Any] = [:]
        var base64: [String: Any] = [:]
        for field in fields {
            multipart[field] = ["type": "string", "contentMediaType": "application/octet-stream"]
            base64[field] = ["type": "string", "contentEncoding": "base64"]
        }
        var content: [String: Any] = [
            "multipart/form-data": ["schema": ["type": "object", "properties": multipart, "required": fields]],
            "application/json": ["schema": ["type": "object", "properties": base64, "required": fields]],
        ]
        if fields == ["image"] {
            for type in ["image/jpeg", "image/png", "image/webp", "application/octet-stream"] {
                content[type] = ["schema": ["type": "string", "contentMediaType": type]]
            }
        }
        return ["required": true, "content": content]
    }

    static func post(
        _ summary: String, _ schema: String, body: [String: Any], parameters: [[String: Any]] = detectionParameters
    ) -> [String: Any] {
        [
            "post": [
                "summary": summary, "parameters": parameters, "requestBody": body,
                "responses": errorResponses.merging(["200": json(envelope(schema), "success")]) { $1 },
            ]
        ]
    }

    static var paths: [String: Any] {
        [
            "/v1/detect": post(
                "Detect faces with boxes, scores and five landmarks", "Detect", body: imageBody(["image"])),
            "/v1/embed": post(
                "A 128-d L2-normalised SFace embedding per face", "Embed", body: imageBody(["image"]),
                parameters: detectionParameters + [
                    parameter(
                        "encoding", ["type": "string", "enum": ["float", "base64"]], "float32 LE base64 or JSON")
                ]),
            "/v1/verify": post(
                "1:1 verification of two images, or an image and an embedding", "Verify",
                body: imageBody(["image1", "image2"]),
                parameters: detectionParameters + [
                    parameter("threshold", ["type": "number", "minimum": -1, "maximum": 1], "same-person cut-off")
                ]),
            "/v1/liveness": post(
                "Passive liveness (anti-spoofing) of the largest face, and of every face", "LivenessCheck",
                body: imageBody(["image"]),
                parameters: detectionParameters + [
                    parameter("threshold", number, "real-minus-spoof logit margin for is_real")
                ]),
            "/v1/analyze": post(
                "One detection, then the requested analyses per face", "Analyze", body: imageBody(["image"]),
                parameters: detectionParameters + [
                    parameter("analyses", string, "comma-separated: embedding,attributes,liveness,quality,landmarks"),
                    parameter("liveness_threshold", number, "real-minus-spoof logit margin"),
                ]),
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
                parameters: detectionParameters + [parameter("analyses", string, "as for /v1/analyze")]),
            "/v1/deepfake": post(
                "Face-swap detection by an operator-installed model (503 until one is installed)", "Deepfake",
                body: imageBody(["image"]),
                parameters: detectionParameters + [parameter("threshold", number, "probability cut-off")]),
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
            "/openapi.json": [
                "get": [
                    "summary": "This document",
                    "responses": ["200": json(["type": "object"], "the OpenAPI 3.1 document")],
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
            "paths": paths.merging(galleryPaths) { $1 },
            "components": ["schemas": schemas.merging(gallerySchemas) { $1 }],
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
