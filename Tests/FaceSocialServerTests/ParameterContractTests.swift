import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The request parameters and the OpenAPI document come from one declaration per parameter
/// (`RequestParameter`, `RouteParameters`); these tests hold both directions against the running
/// routes: every documented parameter is read, and nothing undeclared can be.
@Suite struct ParameterContractTests {
    /// Every query parameter the document lists for an image route gets a bad value: the route
    /// must answer 400 naming that parameter, which it can only do by reading it.
    @Test func everyDocumentedParameterIsRead() async throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data()) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        try await withFaceSocial { app in
            let (token, _) = try await login(app, adminEmail, adminPassword)
            var collection = ""
            var subject = ""
            try await app.testing().test(
                .POST, "/v1/collections", headers: bearer(token), body: try jsonBody(["name": "contract"])
            ) { res in collection = body(res)[path: "data.id"] as? String ?? "" }
            try await app.testing().test(
                .POST, "/v1/collections/\(collection)/subjects", headers: bearer(token),
                body: try jsonBody(["external_id": "contract-subject"])
            ) { res in subject = body(res)[path: "data.id"] as? String ?? "" }
            #expect(!collection.isEmpty && !subject.isEmpty)
            let image = try testImage("obama_small.jpg")
            var checked: [String] = []
            for (template, item) in paths.sorted(by: { $0.key < $1.key }) {
                // The image routes: those that take a multipart body.
                guard let post = (item as? [String: Any])?["post"] as? [String: Any],
                    let requestBody = post["requestBody"] as? [String: Any],
                    (requestBody["content"] as? [String: Any])?["multipart/form-data"] != nil
                else { continue }
                let path = template.replacingOccurrences(of: "{collection}", with: collection)
                    .replacingOccurrences(of: "{subject}", with: subject)
                let query = (post["parameters"] as? [[String: Any]] ?? []).filter { $0["in"] as? String == "query" }
                for name in query.compactMap({ $0["name"] as? String }) {
                    try await app.testing().test(
                        .POST, "\(path)?\(name)=not-a-valid-value",
                        headers: ["Authorization": "Bearer \(token)", "Content-Type": "image/jpeg"],
                        body: ByteBuffer(bytes: image)
                    ) { res in
                        #expect(
                            res.status == .badRequest,
                            "\(template) \(name): \(res.status) \(res.body.string.prefix(200))")
                        #expect(body(res)[path: "error.details.field"] as? String == name, "\(template) \(name)")
                        expectConforms("POST", template, res)
                    }
                    checked.append("\(template) \(name)")
                }
            }
            // Ten image routes with five detection parameters each at least.
            #expect(checked.count >= 50, "\(checked)")
        }
    }

    /// A route can read only what its entry declares: anything else is a 500 that every route
    /// test would catch, never a silently unread or undocumented parameter.
    @Test func undeclaredParametersCannotBeRead() async throws {
        try await withFaceSocial { app in
            let request = Request(
                application: app, method: .POST, url: "/v1/detect?top_k=3&max_faces=2", on: app.eventLoopGroup.next())
            let declared = try await request.imageRequest(maxBytes: 1024, parameters: RouteParameters.identify)
            #expect(try declared.integer(.topK) == 3)
            #expect(try declared.detectionOptions(maxFacesLimit: 10).maxFaces == 2)
            let undeclared = try await request.imageRequest(maxBytes: 1024, parameters: RouteParameters.detect)
            #expect(try undeclared.detectionOptions(maxFacesLimit: 10).maxFaces == 2)
            #expect {
                try undeclared.integer(.topK)
            } throws: { error in
                (error as? APIError)?.status == .internalServerError
            }
        }
    }

    /// Every route's declaration names each parameter once and documents a summary for it.
    @Test func declarationsAreWellFormed() {
        let routes: [String: [RequestParameter]] = [
            "detect": RouteParameters.detect, "embed": RouteParameters.embed, "verify": RouteParameters.verify,
            "liveness": RouteParameters.liveness, "analyze": RouteParameters.analyze,
            "batch analyze": RouteParameters.batchAnalyze, "deepfake": RouteParameters.deepfake,
            "enrol": RouteParameters.enrol, "batch enrol": RouteParameters.batchEnrol,
            "identify": RouteParameters.identify,
        ]
        for (route, parameters) in routes {
            #expect(Set(parameters.map(\.name)).count == parameters.count, "\(route) names a parameter twice")
            #expect(parameters.allSatisfy { !$0.summary.isEmpty }, "\(route)")
        }
    }
}
