import Vapor

/// Who may do what to a gallery: every gallery route stores or reads biometric data, so each
/// needs a principal with the permission, and (for routes under a collection) access to that
/// collection. Runs after routing, so the collection id is known.
struct GalleryAccess: AsyncMiddleware {
    let permission: Permission

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let collection = request.parameters.get("collection").map { $0.lowercased() }
        _ = try await request.authorize(permission, collection: collection)
        return try await next.respond(to: request)
    }
}
