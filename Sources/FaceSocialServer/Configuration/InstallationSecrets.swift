import Crypto
import Foundation

/// The development profile's JWT secret and data key, made once per installation and kept in the
/// data folder (`installation-secrets.json`, 0600), so that no published value signs a token or
/// seals a row. Production never reaches this: it refuses to start without its own secrets.
public enum InstallationSecrets {
    public static let fileName = "installation-secrets.json"

    public struct Stored: Codable, Equatable, Sendable {
        public var jwtSecret: String
        public var dataKey: String
    }

    /// Reads the folder's secrets, or makes them when there are none. Two processes starting at
    /// once agree: the file appears whole (a hard link of a finished file) or not at all.
    public static func loadOrCreate(in directory: URL) throws -> Stored {
        let file = directory.appendingPathComponent(fileName)
        if let stored = try read(file) { return stored }
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let made = Stored(jwtSecret: Secrets.random(bytes: 32), dataKey: randomDataKey())
        let draft = directory.appendingPathComponent(".\(fileName).\(UUID().uuidString)")
        guard
            FileManager.default.createFile(
                atPath: draft.path, contents: try JSONEncoder().encode(made), attributes: [.posixPermissions: 0o600])
        else {
            throw ConfigError.invalid(variable: "FACESOCIAL_DATA_DIR", reason: "cannot write \(draft.path)")
        }
        defer { unlink(draft.path) }
        if link(draft.path, file.path) == 0 { return made }
        // Another process linked its file first: use that one.
        guard errno == EEXIST, let stored = try read(file) else {
            throw ConfigError.invalid(variable: "FACESOCIAL_DATA_DIR", reason: "cannot create \(file.path)")
        }
        return stored
    }

    private static func read(_ file: URL) throws -> Stored? {
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        do {
            return try JSONDecoder().decode(Stored.self, from: data)
        } catch {
            throw ConfigError.invalid(
                variable: "FACESOCIAL_DATA_DIR", reason: "\(file.path) is not a valid secrets file: \(error)")
        }
    }

    /// Standard base64 of 32 random bytes, the form `FACESOCIAL_DATA_KEY` takes.
    private static func randomDataKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }
}

extension AppConfig {
    /// This configuration with the installation's own secrets wherever the development profile
    /// would otherwise use the published defaults. Rows sealed under the published data key
    /// (installations from before these secrets) stay readable through it as a retired key;
    /// `facesocial keys rotate-data` moves them to the new one.
    public func withInstallationSecrets() throws -> AppConfig {
        guard profile == .development,
            jwtSecret == Self.developmentJWTSecret || dataKey == Self.developmentDataKey
        else { return self }
        let stored = try InstallationSecrets.loadOrCreate(in: dataDirectory)
        var resolved = self
        if jwtSecret == Self.developmentJWTSecret { resolved.jwtSecret = stored.jwtSecret }
        if dataKey == Self.developmentDataKey {
            resolved.dataKey = stored.dataKey
            if let published = Data(base64Encoded: Self.developmentDataKey) {
                let id = DataCipher.fingerprint(SymmetricKey(data: published))
                if resolved.retiredDataKeys[id] == nil { resolved.retiredDataKeys[id] = Self.developmentDataKey }
            }
        }
        return resolved
    }
}
