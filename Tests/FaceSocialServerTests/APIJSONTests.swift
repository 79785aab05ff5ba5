import Foundation
import Testing

@testable import FaceSocialServer

/// The one JSON configuration (`APIJSON`): names become snake_case keys and come back, data keys
/// stay as sent, and a refused body names the key the client sent.
@Suite("API JSON")
struct APIJSONTests {
    @Test func everyNameShapeRoundTrips() {
        let names: [(String, String)] = [
            ("subjectID", "subject_id"), ("imageSHA256", "image_sha256"), ("p50Ms", "p50_ms"), ("topK", "top_k"),
            ("estimatedMemoryMB", "estimated_memory_mb"), ("idleTTL", "idle_ttl"), ("isSamePerson", "is_same_person"),
            ("throughputPerS", "throughput_per_s"), ("createdAt", "created_at"), ("faces", "faces"),
        ]
        for (name, key) in names {
            #expect(APIJSON.key(name) == key)
            #expect(APIJSON.propertyName(key) == name)
        }
        // Keys that are not snake_case are taken as they are.
        #expect(APIJSON.propertyName("Some Key") == "Some Key")
        #expect(APIJSON.propertyName("a__b") == "a__b")
    }

    @Test func dictionaryKeysAreDataAndStayAsSent() throws {
        struct Probe: Codable, Equatable {
            let externalID: String
            let metadata: [String: String]
        }
        let probe = Probe(externalID: "e-1", metadata: ["fooBar": "1", "Some Key": "2", "snake_key": "3"])
        let data = try APIJSON.encoder.encode(probe)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["external_id", "metadata"])
        #expect(
            Set((object["metadata"] as? [String: String])?.keys ?? [:].keys) == ["fooBar", "Some Key", "snake_key"])
        #expect(try APIJSON.decoder.decode(Probe.self, from: data) == probe)
    }

    @Test func aRefusedBodyNamesTheKeyTheClientSent() throws {
        struct Body: Codable {
            let externalID: String
            let topK: Int
        }
        let missing = #expect(throws: DecodingError.self) {
            try APIJSON.decoder.decode(Body.self, from: Data(#"{"top_k": 3}"#.utf8))
        }
        #expect(APIError.from(try #require(missing)).message.contains("external_id: is required"))
        let mistyped = #expect(throws: DecodingError.self) {
            try APIJSON.decoder.decode(Body.self, from: Data(#"{"external_id": "x", "top_k": "three"}"#.utf8))
        }
        let message = APIError.from(try #require(mistyped)).message
        #expect(message.contains("top_k:"), "\(message)")
    }
}
