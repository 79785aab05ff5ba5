import Foundation
import Vapor

/// The web console (docs/console.md): plain HTML, CSS and JavaScript modules served at `/console`
/// by the server itself. The files are this target's resources (`Console/web`), which SwiftPM
/// installs next to the binary in `FaceSocial_FaceSocialServer.resources`; they are read once at
/// start and served from memory by name, so no request path ever reaches the file system.
public enum Console {
    /// The resource bundle's folder name, next to the executable.
    static let bundleName = "FaceSocial_FaceSocialServer.resources"

    /// What a console file name may look like: one level, no dots but the extension's.
    static let namePattern = "^[a-z0-9][a-z0-9-]*\\.(html|css|js|svg)$"

    /// The Content-Security-Policy of every console response: the console's own files only, no
    /// inline script or style, images from the page's own object URLs, never framed.
    static let contentSecurityPolicy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob: data:",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
        "frame-ancestors 'none'",
    ].joined(separator: "; ")

    /// Registers the console's routes and the middleware that gives every `/console` answer its
    /// security headers (errors included).
    public static func install(on app: Application) throws {
        let folder = locate()
        let files: ConsoleFiles
        if let folder {
            files = try ConsoleFiles(folder: folder)
        } else {
            app.logger.warning(
                "console files not found next to the executable: /console answers 404",
                metadata: ["bundle": .string(bundleName)])
            files = ConsoleFiles()
        }
        app.middleware.use(ConsoleHeadersMiddleware(), at: .beginning)
        try app.register(collection: ConsoleRoutes(files: files))
    }

    /// `FaceSocial_FaceSocialServer.resources/web` beside the running executable (the server
    /// binary, or the test runner in the same build folder).
    static func locate() -> URL? {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        let folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent(bundleName).appendingPathComponent("web")
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder) && isFolder.boolValue
            ? folder : nil
    }
}

/// The console's files, read once: name → bytes and content type. Only names matching
/// `Console.namePattern` are kept, so a lookup by a request's path component can only find one of
/// them.
struct ConsoleFiles: Sendable {
    struct File: Sendable {
        let bytes: ByteBuffer
        let contentType: String
    }

    private(set) var files: [String: File] = [:]

    init() {}

    init(folder: URL) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        for name in names where Self.isServable(name) {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            files[name] = File(bytes: ByteBuffer(data: data), contentType: Self.contentType(of: name))
        }
    }

    static func isServable(_ name: String) -> Bool {
        name.range(of: Console.namePattern, options: .regularExpression) != nil
    }

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "svg": "image/svg+xml"
        default: "application/octet-stream"
        }
    }

    subscript(name: String) -> File? { files[name] }
}

/// `GET /console` (the page) and `GET /console/{file}` (its styles, modules and icon).
struct ConsoleRoutes: RouteCollection {
    let files: ConsoleFiles

    func boot(routes: any RoutesBuilder) throws {
        routes.get("console") { _ in try serve("index.html") }
        routes.get("console", ":file") { req in try serve(req.parameters.get("file") ?? "") }
    }

    func serve(_ name: String) throws -> Response {
        guard let file = files[name] else {
            throw APIError.notFound("no console file \"\(name.prefix(60))\"")
        }
        return Response(status: .ok, headers: ["Content-Type": file.contentType], body: .init(buffer: file.bytes))
    }
}

/// The console's security headers on every answer under `/console`, errors included (it is the
/// outermost middleware, so it sees the error middleware's answers). The API-wide headers
/// (`SecurityHeadersMiddleware`) are set again here so the console does not depend on them.
struct ConsoleHeadersMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response = try await next.respond(to: request)
        let path = request.url.path
        guard path == "/console" || path.hasPrefix("/console/") else { return response }
        response.headers.replaceOrAdd(name: "Content-Security-Policy", value: Console.contentSecurityPolicy)
        response.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        response.headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        response.headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        response.headers.replaceOrAdd(name: "Cross-Origin-Opener-Policy", value: "same-origin")
        response.headers.replaceOrAdd(name: "Permissions-Policy", value: "camera=(), microphone=(), geolocation=()")
        return response
    }
}
