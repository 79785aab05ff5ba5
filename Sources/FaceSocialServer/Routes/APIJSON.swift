import Foundation
import Vapor

/// The API's one JSON configuration: a property's name is its key, in snake_case (`subjectID` is
/// `subject_id`, `imageSHA256` is `image_sha256`, `p50Ms` is `p50_ms`), so DTOs declare no
/// `CodingKeys` for their names. Dictionary keys (subject metadata, error details) are data and
/// stay as they are. Dates are ISO 8601, as in Vapor's default configuration.
enum APIJSON {
    /// Words a snake_case key writes in lower case that a Swift name writes in capitals.
    static let acronyms = ["id": "ID", "sha256": "SHA256", "ttl": "TTL", "mb": "MB", "url": "URL"]

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in
            let key = path.last!
            return key.intValue.map { AnyCodingKey(intValue: $0) }
                ?? AnyCodingKey(stringValue: propertyName(key.stringValue))
        }
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// The Swift name a snake_case key stands for: `subject_id` → `subjectID`, `top_k` → `topK`.
    /// A key with capitals or no underscore is taken as it is.
    static func propertyName(_ key: String) -> String {
        guard key.contains("_"), key == key.lowercased() else { return key }
        let words = key.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard !words.contains(where: \.isEmpty) else { return key }
        return words[0] + words.dropFirst().map { acronyms[$0] ?? $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The key a Swift name is written as (what the encoder does), for messages that name a field.
    static func key(_ propertyName: String) -> String {
        struct Probe: Encodable {
            let name: String
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: AnyCodingKey.self)
                try container.encodeNil(forKey: AnyCodingKey(stringValue: name))
            }
        }
        guard let data = try? encoder.encode(Probe(name: propertyName)),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let key = object.keys.first
        else { return propertyName }
        return key
    }

    /// Makes this configuration the one Vapor encodes and decodes `application/json` with.
    static func install() {
        ContentConfiguration.global.use(encoder: encoder, for: .json)
        ContentConfiguration.global.use(decoder: decoder, for: .json)
    }
}

/// A coding key made from any string or integer.
struct AnyCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        intValue = nil
    }

    init(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}
