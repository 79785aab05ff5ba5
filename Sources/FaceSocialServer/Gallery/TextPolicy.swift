import Foundation

/// What stored names and metadata strings may hold: no control characters (C0, DEL, C1: NUL,
/// escape sequences, line breaks), which would corrupt logs, terminals and CSV exports that show
/// them. Tabs and line breaks are refused too in names (one line); free text such as a
/// collection's description may keep them.
enum TextPolicy {
    static func refuseControlCharacters(_ text: String, field: String, allowingLineBreaks: Bool = false) throws {
        let allowed: Set<Unicode.Scalar> = allowingLineBreaks ? ["\n", "\r", "\t"] : []
        guard
            let bad = text.unicodeScalars.first(where: {
                $0.properties.generalCategory == .control && !allowed.contains($0)
            })
        else { return }
        throw APIError.validation(
            "\(field) must not contain control characters (found U+\(String(format: "%04X", bad.value)))",
            field: field)
    }

    /// A one-line name or id: no control characters (checked before trimming, which would drop a
    /// trailing CR, LF or NEL (U+0085) unseen), then trimmed to 1...`max` characters.
    static func checked(_ value: String, field: String, max: Int = 200) throws -> String {
        try refuseControlCharacters(value, field: field)
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= max else {
            throw APIError.validation("\(field) must be 1 to \(max) characters", field: field)
        }
        return trimmed
    }

    /// A subject's metadata as stored: JSON of at most 16 KiB with no control characters in any
    /// key or string.
    static func metadataJSON(_ metadata: [String: JSONValue]?) throws -> String {
        func check(_ value: JSONValue) throws {
            switch value {
            case .string(let text): try refuseControlCharacters(text, field: "metadata")
            case .array(let items): for item in items { try check(item) }
            case .object(let fields):
                for (key, item) in fields {
                    try refuseControlCharacters(key, field: "metadata")
                    try check(item)
                }
            case .number, .bool, .null: break
            }
        }
        try check(.object(metadata ?? [:]))
        let data = try JSONEncoder().encode(metadata ?? [:])
        guard data.count <= 16 * 1024 else { throw APIError.validation("metadata is over 16 KiB", field: "metadata") }
        return String(decoding: data, as: UTF8.self)
    }
}
