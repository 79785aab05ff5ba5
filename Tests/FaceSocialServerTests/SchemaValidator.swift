import Foundation

@testable import FaceSocialServer

/// Checks a JSON value against the subset of JSON Schema the OpenAPI document uses: type,
/// properties, required, items, enum, oneOf, additionalProperties, minimum/maximum and `$ref` into
/// `components.schemas`. Works on `JSONValue` (decoded strictly, so `true` is never a number).
struct SchemaValidator {
    let document: JSONValue

    init(_ data: Data) throws {
        document = try JSONDecoder().decode(JSONValue.self, from: data)
    }

    func validate(_ value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        guard case .object(let s) = schema else { return ["\(path): schema is not an object"] }
        if case .string(let ref)? = s["$ref"] {
            let name = String(ref.split(separator: "/").last ?? "")
            guard let resolved = document.at("components", "schemas", name) else { return ["\(path): no \(ref)"] }
            return validate(value, against: resolved, at: path)
        }
        if case .array(let options)? = s["oneOf"] {
            let matches = options.filter { validate(value, against: $0, at: path).isEmpty }.count
            return matches == 1 ? [] : ["\(path): matches \(matches) of the oneOf schemas"]
        }
        if case .string(let type)? = s["type"], !Self.has(value, type) {
            return ["\(path): expected \(type), got \(value)"]
        }
        var problems: [String] = []
        if case .array(let allowed)? = s["enum"], !allowed.contains(value) {
            problems.append("\(path): \(value) not in the enum")
        }
        if case .number(let n) = value {
            if case .number(let minimum)? = s["minimum"], n < minimum { problems.append("\(path): \(n) < \(minimum)") }
            if case .number(let maximum)? = s["maximum"], n > maximum { problems.append("\(path): \(n) > \(maximum)") }
        }
        if case .object(let object) = value {
            var properties: [String: JSONValue] = [:]
            if case .object(let p)? = s["properties"] { properties = p }
            if case .array(let required)? = s["required"] {
                for case .string(let key) in required where object[key] == nil {
                    problems.append("\(path): missing required \(key)")
                }
            }
            for (key, item) in object {
                if let property = properties[key] {
                    problems += validate(item, against: property, at: "\(path).\(key)")
                } else if let extra = s["additionalProperties"], case .object = extra {
                    problems += validate(item, against: extra, at: "\(path).\(key)")
                } else if s["properties"] != nil {
                    problems.append("\(path): undocumented property \(key)")
                }
            }
        }
        if case .array(let array) = value, let items = s["items"] {
            for (index, item) in array.enumerated() {
                problems += validate(item, against: items, at: "\(path)[\(index)]")
            }
        }
        return problems
    }

    static func has(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null),
            ("number", .number):
            true
        case ("integer", .number(let n)): n == n.rounded()
        default: false
        }
    }

    /// The schema the document gives for a route's JSON response with this status.
    func responseSchema(method: String, path: String, status: Int) -> JSONValue? {
        document.at(
            "paths", path, method.lowercased(), "responses", String(status), "content", "application/json", "schema")
    }

    /// Violations of a response body against its documented schema (one entry if undocumented).
    func check(method: String, path: String, status: Int, body: Data) -> [String] {
        guard let schema = responseSchema(method: method, path: path, status: status) else {
            return ["\(method) \(path) \(status) is not documented"]
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: body) else { return ["body is not JSON"] }
        return validate(value, against: schema)
    }
}

extension JSONValue {
    func at(_ keys: String...) -> JSONValue? {
        var current: JSONValue? = self
        for key in keys {
            guard case .object(let object)? = current else { return nil }
            current = object[key]
        }
        return current
    }
}
