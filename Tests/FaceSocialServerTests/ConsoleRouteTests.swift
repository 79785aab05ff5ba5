import Foundation
import Testing
import Vapor
import VaporTesting

@testable import FaceSocialServer

/// The web console's routes (Console/ConsoleRoutes.swift): its files with their content types,
/// the security headers on every answer under /console, and no way out of its folder. The pages
/// themselves are tested in a real browser (tests/console).
@Suite("Web console")
struct ConsoleRouteTests {
    /// The console's files in the source tree; the server serves the installed copy beside the
    /// test runner.
    static let sourceFolder = packageRoot.appendingPathComponent("Sources/FaceSocialServer/Console/web")

    static func sourceFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: sourceFolder.path).sorted()
    }

    func expectConsoleHeaders(_ res: TestingHTTPResponse, _ what: String) {
        let csp = res.headers.first(name: "Content-Security-Policy") ?? ""
        #expect(csp.contains("frame-ancestors 'none'"), "\(what): CSP \(csp)")
        #expect(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "\(what): CSP \(csp)")
        #expect(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "\(what): CSP \(csp)")
        #expect(res.headers.first(name: "X-Frame-Options") == "DENY", "\(what)")
        #expect(res.headers.first(name: "X-Content-Type-Options") == "nosniff", "\(what)")
        #expect(res.headers.first(name: "Referrer-Policy") == "no-referrer", "\(what)")
    }

    @Test func thePageOpensAtSlashConsole() async throws {
        try await withFaceSocial { app in
            for path in ["/console", "/console/", "/console/index.html"] {
                try await app.testing().test(.GET, path) { res in
                    #expect(res.status == .ok, "\(path)")
                    #expect(res.headers.contentType?.description.hasPrefix("text/html") == true, "\(path)")
                    #expect(res.body.string.contains(#"<script type="module" src="/console/app.js"></script>"#))
                    expectConsoleHeaders(res, path)
                }
            }
        }
    }

    @Test func everyFileIsServedWithItsContentType() async throws {
        let names = try Self.sourceFiles()
        #expect(names.contains("app.js") && names.contains("console.css") && names.contains("index.html"))
        try await withFaceSocial { app in
            for name in names {
                #expect(ConsoleFiles.isServable(name), "\(name) does not match the served names")
                let expected = [
                    "html": "text/html", "css": "text/css", "js": "text/javascript", "svg": "image/svg+xml",
                ][String(name.split(separator: ".").last ?? "")]
                try await app.testing().test(.GET, "/console/\(name)") { res in
                    #expect(res.status == .ok, "\(name)")
                    let type = res.headers.contentType.map { "\($0.type)/\($0.subType)" }
                    #expect(type == expected, "\(name): \(type ?? "none")")
                    let source = try Data(contentsOf: Self.sourceFolder.appendingPathComponent(name))
                    #expect(Data(res.body.readableBytesView) == source, "\(name) differs from its source")
                    expectConsoleHeaders(res, name)
                }
            }
        }
    }

    @Test func noInlineScriptStyleOrBrowserStorage() throws {
        let html = try String(contentsOf: Self.sourceFolder.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.range(of: #"<script(?![^>]*\bsrc=)[^>]*>"#, options: .regularExpression) == nil)
        #expect(!html.contains(" style=") && !html.contains("<style"))
        #expect(html.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil, "an inline event handler")
        for name in try Self.sourceFiles() where name.hasSuffix(".js") {
            let js = try String(contentsOf: Self.sourceFolder.appendingPathComponent(name), encoding: .utf8)
            // Tokens and images stay in memory: the console never touches the browser's storage.
            for word in ["localStorage", "sessionStorage", "indexedDB", "document.cookie", "innerHTML", "eval("] {
                #expect(!js.contains(word), "\(name) uses \(word)")
            }
            // Only relative API paths (the same origin): no third-party script or endpoint.
            #expect(!js.contains("http://") && !js.contains("https://"), "\(name) names another origin")
        }
    }

    @Test(arguments: [
        "/console/../Package.swift", "/console/%2e%2e/Package.swift", "/console/..%2fPackage.swift",
        "/console/%2e%2e%2fPackage.swift", "/console/..%5cPackage.swift", "/console/.%2e/.%2e/Package.swift",
        "/console/%2fetc%2fpasswd", "/console//etc/passwd", "/console/..", "/console/.", "/console/web/index.html",
        "/console/ConsoleRoutes.swift", "/console/missing.js", "/console/app.js/x", "/console/APP.JS",
    ])
    func nothingOutsideTheConsoleFiles(path: String) async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.GET, path) { res in
                #expect(res.status == .notFound, "\(path): \(res.status)")
                #expect(errorCode(res) == "NOT_FOUND", "\(path)")
                #expect(!res.body.string.contains("PackageDescription") && !res.body.string.contains("root:"))
                expectConsoleHeaders(res, path)
                if res.status == .notFound, path.split(separator: "/").count == 2 {
                    expectConforms("GET", "/console/{file}", res)
                }
            }
        }
    }

    @Test func theAPIOutsideTheConsoleHasNoConsolePolicy() async throws {
        try await withFaceSocial { app in
            try await app.testing().test(.GET, "/health") { res in
                #expect(res.status == .ok)
                #expect(res.headers.first(name: "Content-Security-Policy") == nil)
            }
        }
    }

    @Test func filesAreReadOnlyByTheirNames() throws {
        let files = try ConsoleFiles(folder: Self.sourceFolder)
        #expect(files["app.js"] != nil && files["index.html"] != nil)
        for name in ["../Package.swift", "", ".", "web/app.js", "/etc/passwd", "ConsoleRoutes.swift"] {
            #expect(files[name] == nil, "\(name)")
            #expect(!ConsoleFiles.isServable(name), "\(name)")
        }
        #expect(Console.locate() != nil, "the resource bundle is not beside the test runner")
    }
}
