import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

@Suite("OpenAPI document")
struct OpenAPITests {
    @Test func everyRegisteredRouteIsDescribed() async throws {
        try await withFaceSocial { app in
            let validator = try openAPI.get()
            for route in app.routes.all {
                let path =
                    "/"
                    + route.path.map { component -> String in
                        if case .parameter(let name) = component { return "{\(name)}" }
                        return component.description
                    }.joined(separator: "/")
                let operation = validator.document.at("paths", path, route.method.rawValue.lowercased())
                #expect(operation != nil, "\(route.method) \(path) is not in /openapi.json")
                #expect(operation?.at("responses") != nil, "\(route.method) \(path) has no responses")
            }
        }
    }

    @Test func servedDocumentIsOpenAPI31AndSelfConsistent() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.GET, "/openapi.json") { res in
                #expect(res.status == .ok)
                let document = try JSONDecoder().decode(JSONValue.self, from: Data(res.body.readableBytesView))
                #expect(document.at("openapi") == .string("3.1.0"))
                // Every $ref resolves.
                var refs: [String] = []
                func collect(_ value: JSONValue) {
                    switch value {
                    case .object(let object):
                        if case .string(let ref)? = object["$ref"] {
                            refs.append(String(ref.split(separator: "/").last!))
                        }
                        object.values.forEach(collect)
                    case .array(let items): items.forEach(collect)
                    default: break
                    }
                }
                collect(document)
                #expect(refs.count > 20)
                for name in Set(refs) { #expect(document.at("components", "schemas", name) != nil, "\(name)") }
            }
        }
    }

    @Test func validatorCatchesViolations() throws {
        let validator = try openAPI.get()
        let schema = try #require(validator.responseSchema(method: "POST", path: "/v1/detect", status: 200))
        let bad = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"data": {"faces": "none"}}"#.utf8))
        #expect(!validator.validate(bad, against: schema).isEmpty)
    }
}
