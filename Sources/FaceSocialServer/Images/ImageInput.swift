import Crypto
import FaceKit
import Foundation
import Vapor

/// Image bytes and plain fields from a request, whichever way the client sent them: multipart
/// (`image`, `image1`, `image2` parts plus form fields), a raw `image/*` body, or JSON with
/// base64 images. Query parameters are fields too; body fields win over query ones. Fields are
/// read only through the route's declared `RequestParameter`s (below), never by name.
struct ImageRequest: Sendable {
    var images: [String: [UInt8]] = [:]
    /// Every image in the order it was sent (the batch routes read this).
    var imageList: [[UInt8]] = []
    fileprivate var fields: [String: String] = [:]
    /// Non-string JSON values (arrays, objects), kept raw for routes that need them.
    fileprivate var jsonFields: [String: JSONValue] = [:]
    /// The parameters the route declared (`RouteParameters`).
    fileprivate var declared: Set<String> = []
    /// SHA-256 of the query and the body as sent: what an `Idempotency-Key` is bound to.
    var requestSHA256 = ""

    /// The image sent under `name`, or a clear 4xx.
    func image(_ name: String) throws -> [UInt8] {
        guard let bytes = images[name] else {
            throw APIError.validation("no image was sent in the \"\(name)\" field", field: name)
        }
        guard !bytes.isEmpty else { throw APIError.invalidImage("the \"\(name)\" image is empty") }
        return bytes
    }
}

/// A decoded JSON value, used where a request field can be a number, a string, an array or an object.
enum JSONValue: Codable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let v): try container.encode(v)
        case .number(let v): try container.encode(v)
        case .bool(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        case .null: try container.encodeNil()
        }
    }

    /// The scalar as text, the way a form field would carry it.
    var scalarText: String? {
        switch self {
        case .string(let v): v
        case .number(let v): v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        case .bool(let v): String(v)
        default: nil
        }
    }
}

extension Request {
    static let imageFieldNames: Set<String> = ["image", "image1", "image2"]

    /// Collects the body (up to the configured limit) and extracts images and fields; the route
    /// may then read the `parameters` it declares and no others.
    func imageRequest(maxBytes: Int, parameters: [RequestParameter]) async throws -> ImageRequest {
        var result = ImageRequest()
        result.declared = Set(parameters.map(\.name))
        if let query = url.query {
            for pair in query.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard let key = parts.first?.removingPercentEncoding else { continue }
                let value =
                    parts.count > 1
                    ? (parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
                result.fields[key] = value
            }
        }
        let body = try await collectedBody(maxBytes: maxBytes)
        var hash = SHA256()
        hash.update(data: Array((url.query ?? "").utf8) + [0])
        hash.update(data: Array(body.readableBytesView))
        result.requestSHA256 = Secrets.hex(hash.finalize())
        let type = headers.contentType
        if type?.type == "multipart", type?.subType == "form-data" {
            try parseMultipart(body, into: &result)
        } else if type == .json || type?.subType.hasSuffix("+json") == true {
            try parseJSON(body, into: &result)
        } else if body.readableBytes > 0 {
            // Any other body is taken as the image itself (image/jpeg, image/png, image/webp, image/heic,
            // application/octet-stream); the decoder, not the header, decides what it is.
            result.images["image"] = Array(body.readableBytesView)
            result.imageList = [Array(body.readableBytesView)]
        }
        return result
    }

    /// The body, which the server (FaceSocialHTTPServer) has read whole within the route's limit
    /// and the body deadline; this route may take less than that limit.
    private func collectedBody(maxBytes: Int) async throws -> ByteBuffer {
        if let length = headers.first(name: .contentLength).flatMap(Int.init), length > maxBytes {
            throw APIError.imageTooLarge("the request body of \(length) bytes exceeds the limit of \(maxBytes) bytes")
        }
        let buffer = body.data ?? ByteBuffer()
        guard buffer.readableBytes <= maxBytes else {
            throw APIError.imageTooLarge("the request body exceeds the limit of \(maxBytes) bytes")
        }
        return buffer
    }

    private func parseMultipart(_ body: ByteBuffer, into result: inout ImageRequest) throws {
        guard let boundary = headers.contentType?.parameters["boundary"], !boundary.isEmpty else {
            throw APIError.validation("multipart body without a boundary")
        }
        try MultipartHeaderCheck.check(body.readableBytesView, boundary: boundary)
        let parser = MultipartParser(boundary: boundary)
        var parts: [(name: String?, filename: Bool, data: [UInt8])] = []
        var name: String?
        var isFile = false
        var data: [UInt8] = []
        parser.onHeader = { field, value in
            guard field.lowercased() == "content-disposition" else { return }
            let disposition = HTTPHeaders([("Content-Disposition", value)]).contentDisposition
            name = disposition?.name
            isFile = disposition?.filename != nil
        }
        parser.onBody = { chunk in data.append(contentsOf: chunk.readableBytesView) }
        parser.onPartComplete = {
            parts.append((name, isFile, data))
            name = nil
            isFile = false
            data = []
        }
        do {
            try parser.execute(body)
        } catch {
            throw APIError.validation("malformed multipart body: \(error)")
        }
        for part in parts {
            guard let partName = part.name else { continue }
            if Self.imageFieldNames.contains(partName) || part.filename {
                // Two `image` parts: which one was meant is a guess, so neither is used.
                if Self.imageFieldNames.contains(partName), result.images[partName] != nil {
                    throw APIError.validation("the \(partName) part appears more than once", field: partName)
                }
                result.images[partName] = part.data
                result.imageList.append(part.data)
            } else {
                result.fields[partName] = String(decoding: part.data, as: UTF8.self)
            }
        }
        if parts.isEmpty { throw APIError.validation("multipart body has no parts") }
    }

    private func parseJSON(_ body: ByteBuffer, into result: inout ImageRequest) throws {
        let object: [String: JSONValue]
        do {
            object = try JSONDecoder().decode([String: JSONValue].self, from: Data(body.readableBytesView))
        } catch {
            throw APIError.validation("the body is not a JSON object")
        }
        for (key, value) in object {
            if Self.imageFieldNames.contains(key) {
                guard case .string(let text) = value else {
                    throw APIError.validation("\"\(key)\" must be a base64 string", field: key)
                }
                result.images[key] = try Self.base64Image(text, field: key)
                result.imageList.append(result.images[key]!)
            } else if key == "images", case .array(let items) = value {
                for (index, item) in items.enumerated() {
                    guard case .string(let text) = item else {
                        throw APIError.validation("\"images\" must be an array of base64 strings", field: "images")
                    }
                    // A bad item is reported per item by the batch route, not here.
                    result.imageList.append((try? Self.base64Image(text, field: "images[\(index)]")) ?? [])
                }
            } else if let text = value.scalarText {
                result.fields[key] = text
            } else {
                result.jsonFields[key] = value
            }
        }
    }

    /// Decodes base64 (standard or URL-safe, with or without a `data:image/...;base64,` prefix).
    static func base64Image(_ text: String, field: String) throws -> [UInt8] {
        var payload = Substring(text)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") {
            payload = payload[payload.index(after: comma)...]
        }
        var normalized = payload.filter { !$0.isWhitespace }.replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while normalized.count % 4 != 0 { normalized.append("=") }
        guard let data = Data(base64Encoded: normalized) else {
            throw APIError.invalidImage("\"\(field)\" is not valid base64")
        }
        return Array(data)
    }
}

/// MultipartKit 4.7 traps (SIGILL) on a byte ≥ 0x80 in a part's header name: it looks the byte up in
/// a 128-entry table. Header names must be ASCII tokens anyway (RFC 7230), so each part's header
/// block is checked before the parser sees the body, and such a body is a 400.
enum MultipartHeaderCheck {
    static func check<Bytes: Collection<UInt8>>(_ bytes: Bytes, boundary: String) throws where Bytes.Index == Int {
        let delimiter = Array("--\(boundary)".utf8)
        guard let first = delimiter.first else { return }
        var i = bytes.startIndex
        let end = bytes.endIndex
        func matches(_ pattern: [UInt8], at position: Int) -> Bool {
            guard position + pattern.count <= end else { return false }
            for k in 0..<pattern.count where bytes[position + k] != pattern[k] { return false }
            return true
        }
        while i < end {
            guard bytes[i] == first, matches(delimiter, at: i) else {
                i += 1
                continue
            }
            // Only a delimiter at the start of the body or of a line opens a part.
            let atLineStart =
                i == bytes.startIndex || (i >= bytes.startIndex + 2 && bytes[i - 2] == 13 && bytes[i - 1] == 10)
            i += delimiter.count
            guard atLineStart else { continue }
            // The rest of the delimiter line, then header lines up to an empty one; a name ends
            // at the first ':'.
            while i < end && bytes[i] != 10 { i += 1 }
            i += 1
            while i < end {
                let lineStart = i
                var inName = true
                while i < end && bytes[i] != 10 {
                    if bytes[i] == UInt8(ascii: ":") { inName = false }
                    if inName && bytes[i] >= 0x80 {
                        throw APIError.validation("malformed multipart body: a part header name is not ASCII")
                    }
                    i += 1
                }
                let length = i - lineStart
                i += 1
                if length == 0 || (length == 1 && bytes[lineStart] == 13) { break }
            }
        }
    }
}

/// Typed reads of declared parameters with range checks; a bad value is a 400 `VALIDATION_FAILED`
/// naming the field. Reading an undeclared parameter is a programming error, answered 500 so
/// every route test catches it.
extension ImageRequest {
    private func raw(_ parameter: RequestParameter) throws -> String? {
        guard declared.contains(parameter.name) else {
            throw APIError(
                .internalServerError, "INTERNAL_ERROR",
                "the route reads \(parameter.name), which its RouteParameters entry does not declare")
        }
        return fields[parameter.name]
    }

    /// A number; `configured` is the default where the declaration leaves it to configuration.
    func number(_ parameter: RequestParameter, default configured: Float? = nil) throws -> Float {
        guard case .number(_, let declaredDefault) = parameter.kind, let fallback = configured ?? declaredDefault else {
            preconditionFailure("\(parameter.name) is not a number with a default")
        }
        return try numberIfSent(parameter) ?? fallback
    }

    /// The number sent, checked against the declared range; nil when none was sent.
    func numberIfSent(_ parameter: RequestParameter) throws -> Float? {
        guard case .number(let range, _) = parameter.kind else {
            preconditionFailure("\(parameter.name) is not a number")
        }
        guard let raw = try raw(parameter) else { return nil }
        guard let value = Float(raw.trimmingCharacters(in: .whitespaces)), value.isFinite, range.contains(value) else {
            throw APIError.validation(
                "\(parameter.name) must be a number in \(range.lowerBound)...\(range.upperBound), got \"\(raw.prefix(40))\"",
                field: parameter.name)
        }
        return value
    }

    /// An integer; `limit` narrows the declared range where configuration bounds it.
    func integer(_ parameter: RequestParameter, default configured: Int? = nil, limit: Int? = nil) throws -> Int {
        guard case .integer(let minimum, let maximum, let declaredDefault) = parameter.kind,
            let fallback = configured ?? declaredDefault, let upper = limit ?? maximum
        else { preconditionFailure("\(parameter.name) is not an integer with a default and a maximum") }
        let range = minimum...min(upper, maximum ?? upper)
        guard let raw = try raw(parameter) else { return fallback }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw APIError.validation(
                "\(parameter.name) must be an integer in \(range.lowerBound)...\(range.upperBound), got \"\(raw.prefix(40))\"",
                field: parameter.name)
        }
        return value
    }

    /// One of the declared choices (or the declared default).
    func choice(_ parameter: RequestParameter) throws -> String {
        guard case .choice(let choices, let fallback) = parameter.kind else {
            preconditionFailure("\(parameter.name) is not a choice")
        }
        let value = try raw(parameter) ?? fallback
        guard choices.contains(value) else {
            throw APIError.validation(
                "\(parameter.name) must be one of \(choices.joined(separator: ", ")), got \"\(value.prefix(40))\"",
                field: parameter.name)
        }
        return value
    }

    /// The named members of a list parameter, comma-separated or a JSON array; nil when absent.
    func list(_ parameter: RequestParameter) throws -> [String]? {
        guard case .list(let allowed) = parameter.kind else { preconditionFailure("\(parameter.name) is not a list") }
        var names: [String]
        if case .array(let items)? = try json(parameter) {
            names = items.compactMap(\.scalarText)
        } else if let raw = try raw(parameter) {
            names = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            return nil
        }
        names = names.filter { !$0.isEmpty }
        if let unknown = names.first(where: { !allowed.contains($0) }) {
            throw APIError.validation(
                "unknown \(parameter.name) value \"\(unknown.prefix(40))\"; choose from "
                    + allowed.joined(separator: ", "), field: parameter.name)
        }
        guard !names.isEmpty else { throw APIError.validation("\(parameter.name) is empty", field: parameter.name) }
        return names
    }

    /// A parameter's text as sent (a form field, a query value or a JSON scalar).
    func text(_ parameter: RequestParameter) throws -> String? { try raw(parameter) }

    /// A parameter sent as a JSON array or object.
    func json(_ parameter: RequestParameter) throws -> JSONValue? {
        _ = try raw(parameter)
        return jsonFields[parameter.name]
    }

    /// An embedding sent in the body instead of an image (verify's `embedding`, identify's): a
    /// JSON array of numbers or base64 float32; nil when absent, 400 naming it when malformed.
    func embedding(_ parameter: RequestParameter, dimension: Int = RecognitionModel.standard.network.dimension) throws
        -> [Float]?
    {
        let values: [Float]?
        let sent = try json(parameter)
        if case .array(let items)? = sent {
            // One pass, linear in the items (a million numbers must not take quadratic time).
            values = items.compactMap { item -> Float? in
                if case .number(let n) = item { return Float(n) }
                return nil
            }
            guard values?.count == items.count else {
                throw APIError.validation("\(parameter.name) must be an array of numbers", field: parameter.name)
            }
        } else if let text = try text(parameter) {
            if text.hasPrefix("[") {
                values = try? JSONDecoder().decode([Float].self, from: Data(text.utf8))
            } else {
                values = EmbeddingEncoding.decodeBase64(text)
            }
            guard values != nil else {
                throw APIError.validation(
                    "\(parameter.name) must be a JSON array or base64 float32", field: parameter.name)
            }
        } else if let sent, sent != .null {
            // An object (or another shape that is neither an array nor text) is sent, not absent.
            throw APIError.validation("\(parameter.name) must be a JSON array or base64 float32", field: parameter.name)
        } else {
            return nil
        }
        guard let values, values.count == dimension, values.allSatisfy(\.isFinite),
            values.contains(where: { $0 != 0 })
        else {
            throw APIError.validation(
                "\(parameter.name) must hold \(dimension) finite numbers", field: parameter.name)
        }
        return values
    }

    /// The detector options shared by every route that finds faces.
    func detectionOptions(maxFacesLimit: Int) throws -> DetectionOptions {
        DetectionOptions(
            confidenceThreshold: try number(.confidenceThreshold),
            nmsThreshold: try number(.nmsThreshold),
            maxFaces: try integer(.maxFaces, default: maxFacesLimit, limit: maxFacesLimit),
            minFaceSize: try number(.minFaceSize),
            rotation: RotationSearch(rawValue: try choice(.autoRotate))!)
    }

    func detector() throws -> DetectorKind {
        DetectorKind(rawValue: try choice(.detector))!
    }
}
