import Crypto
import Foundation
import JWTKit

/// The claims of an access token.
public struct AccessClaims: JWTPayload, Sendable {
    static let issuer = "facesocial"
    /// The audience every access token names; a token for anything else is refused.
    static let audience = "facesocial-api"
    /// Clock difference between instances that is tolerated on `iat` and `nbf`.
    static let leeway: TimeInterval = 5
    public var sub: SubjectClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var jti: IDClaim
    public var iss: IssuerClaim
    public var role: String
    public var typ: String
    /// The user's token version when the token was issued (absent counts as 0).
    public var ver: Int?
    /// Required on verification: it must include `audience`.
    public var aud: AudienceClaim?
    /// Optional; when present the token is refused before it.
    public var nbf: NotBeforeClaim?

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard iss.value == Self.issuer, typ == "access" else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "not a FaceSocial access token")
        }
    }

    /// The checks that need the configured lifetime: the audience, `nbf` and `iat` not in the
    /// future, and `exp - iat` no longer than `maxLifetime` (so a stolen key cannot mint a token
    /// that outlives the policy). Plain code: `KeyRing.verify` calls it after the signature.
    func validate(now: Date, maxLifetime: TimeInterval) throws(TokenError) {
        guard let aud, aud.value.contains(Self.audience) else {
            throw .invalid("the token is not meant for this API (aud)")
        }
        if let nbf, nbf.value > now.addingTimeInterval(Self.leeway) {
            throw .invalid("the token is not valid yet (nbf)")
        }
        guard iat.value <= now.addingTimeInterval(Self.leeway) else {
            throw .invalid("the token was issued in the future (iat)")
        }
        guard exp.value.timeIntervalSince(iat.value) <= maxLifetime + 1 else {
            throw .invalid("the token lives longer than the configured access-token lifetime")
        }
    }
}

public enum TokenError: Error, CustomStringConvertible, Equatable {
    case malformed
    case unsupportedAlgorithm(String)
    case unknownKey, algorithmMismatch
    case invalid(String)

    public var description: String {
        switch self {
        case .malformed: "the token is not a signed JWT"
        case .unsupportedAlgorithm(let alg): "algorithm \(alg.prefix(20)) is not accepted"
        case .unknownKey: "the token's kid names no verification key"
        case .algorithmMismatch: "the token's algorithm does not match its key"
        case .invalid(let reason): reason
        }
    }
}

/// Every verification key with its pinned algorithm, and the one key that signs.
///
/// Each key lives in its own `JWTKeyCollection`, chosen by our own lookup of the header's `kid`:
/// JWTKit alone would fall back to a default key for an unknown kid and would not check the
/// header's `alg` against the key, which is how HS/RS confusion works.
public final class KeyRing: Sendable {
    public struct Key: Sendable {
        public let kid: String
        public let algorithm: String
        let keys: JWTKeyCollection
        /// The public JWK; nil for HMAC secrets, which are never published.
        public let jwk: [String: String]?
    }

    public let keys: [String: Key]
    public let signingKid: String
    /// The longest `exp - iat` accepted: FACESOCIAL_ACCESS_TOKEN_TTL_SECONDS.
    public let maxLifetime: TimeInterval

    public static let supportedAlgorithms: Set<String> = ["HS256", "ES256", "RS256"]

    public init(keys: [Key], signingKid: String, maxLifetime: TimeInterval = 900) {
        self.keys = Dictionary(keys.map { ($0.kid, $0) }, uniquingKeysWith: { first, _ in first })
        self.signingKid = signingKid
        self.maxLifetime = maxLifetime
    }

    /// HS256 over the secret, plus every PEM private key in the key directory. The directory's
    /// `current` file (or else the last kid by name) signs when present; otherwise the secret does.
    public static func load(secret: String, keyDirectory: URL?, maxLifetime: TimeInterval = 900) async throws
        -> KeyRing
    {
        guard secret.utf8.count >= 32 else {
            throw ConfigError.invalid(variable: "JWT_SECRET_KEY", reason: "must be at least 32 characters (HS256)")
        }
        var keys: [Key] = []
        let fingerprint = SHA256.hash(data: Data(secret.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
        let hsKid = "hs256-\(fingerprint)"
        let hs = JWTKeyCollection()
        await hs.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: hsKid))
        keys.append(Key(kid: hsKid, algorithm: "HS256", keys: hs, jwk: nil))
        var signing = hsKid
        if let keyDirectory {
            let files = try FileManager.default.contentsOfDirectory(atPath: keyDirectory.path)
                .filter { $0.hasSuffix(".pem") }.sorted()
            for file in files {
                let kid = String(file.dropLast(4))
                let pem = try String(contentsOf: keyDirectory.appendingPathComponent(file), encoding: .utf8)
                keys.append(try await key(kid: kid, pem: pem))
                signing = kid
            }
            let currentFile = keyDirectory.appendingPathComponent("current")
            if let current = try? String(contentsOf: currentFile, encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines), !current.isEmpty
            {
                guard keys.contains(where: { $0.kid == current }) else {
                    throw ConfigError.invalid(
                        variable: "FACESOCIAL_JWT_KEY_DIR", reason: "current names \(current), which has no .pem file")
                }
                signing = current
            }
        }
        return KeyRing(keys: keys, signingKid: signing, maxLifetime: maxLifetime)
    }

    /// An ES256 (P-256) or RS256 private key from PEM.
    static func key(kid: String, pem: String) async throws -> Key {
        let collection = JWTKeyCollection()
        let id = JWKIdentifier(string: kid)
        if let ec = try? ES256PrivateKey(pem: pem) {
            await collection.add(ecdsa: ec, kid: id)
            let (x, y) = ec.publicKey.parameters ?? ("", "")
            return Key(
                kid: kid, algorithm: "ES256", keys: collection,
                jwk: ["kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"])
        }
        if let rsa = try? Insecure.RSA.PrivateKey(pem: pem) {
            await collection.add(rsa: rsa, digestAlgorithm: .sha256, kid: id)
            let (n, e) = try rsa.publicKey.getKeyPrimitives()
            return Key(
                kid: kid, algorithm: "RS256", keys: collection,
                jwk: [
                    "kty": "RSA", "n": n.base64URLEncoded, "e": e.base64URLEncoded, "kid": kid, "alg": "RS256",
                    "use": "sig",
                ])
        }
        throw ConfigError.invalid(
            variable: "FACESOCIAL_JWT_KEY_DIR", reason: "\(kid).pem is not a P-256 or RSA private key in PEM")
    }

    public func sign(_ claims: AccessClaims) async throws -> String {
        guard let key = keys[signingKid] else { throw TokenError.unknownKey }
        return try await key.keys.sign(claims, kid: JWKIdentifier(string: key.kid))
    }

    /// Verifies signature and claims with the key the `kid` names, only under that key's algorithm.
    public func verify(_ token: String) async throws -> AccessClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[2].isEmpty, let headerData = Data(base64URL: String(parts[0])),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { throw TokenError.malformed }
        guard let alg = header["alg"] as? String, Self.supportedAlgorithms.contains(alg) else {
            throw TokenError.unsupportedAlgorithm((header["alg"] as? String) ?? "(missing)")
        }
        guard let kid = header["kid"] as? String, let key = keys[kid] else { throw TokenError.unknownKey }
        guard key.algorithm == alg else { throw TokenError.algorithmMismatch }
        let claims: AccessClaims
        do {
            claims = try await key.keys.verify(token, as: AccessClaims.self)
        } catch let error as JWTError {
            throw TokenError.invalid(
                error.errorType == .claimVerificationFailure
                    ? "the token has expired or is not an access token" : "the token's signature does not verify")
        }
        try claims.validate(now: Date(), maxLifetime: maxLifetime)
        return claims
    }

    /// The public keys as a JWKS document.
    public var jwks: [String: [[String: String]]] {
        ["keys": keys.values.compactMap(\.jwk).sorted { ($0["kid"] ?? "") < ($1["kid"] ?? "") }]
    }

    /// Writes a new ES256 key into the directory, makes it the signing key, and removes the oldest
    /// keys beyond `keep` (tokens they signed stop verifying). Returns the new kid.
    public static func rotate(directory: URL, keep: Int, now: Date = Date()) throws -> (kid: String, removed: [String])
    {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let kid = "es256-\(formatter.string(from: now))-\(UUID().uuidString.prefix(4).lowercased())"
        let key = ES256PrivateKey()
        let file = directory.appendingPathComponent("\(kid).pem")
        try Data(key.pemRepresentation.utf8).write(to: file, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        try Data("\(kid)\n".utf8).write(to: directory.appendingPathComponent("current"), options: .atomic)
        // Rotated keys sort by their timestamped names; other files are the operator's and stay.
        let rotated = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix("es256-") && $0.hasSuffix(".pem") }.sorted()
        var removed: [String] = []
        for old in rotated.dropLast(max(1, keep)) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(old))
            removed.append(String(old.dropLast(4)))
        }
        return (kid, removed)
    }
}

extension Data {
    var base64URLEncoded: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    init?(base64URL: String) {
        var text = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        self.init(base64Encoded: text)
    }
}

/// Random secrets and their stored digests.
enum Secrets {
    static func random(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64URLEncoded
    }

    static func sha256Hex(_ text: String) -> String { hex(SHA256.hash(data: Data(text.utf8))) }

    /// Lowercase hex of bytes (a digest).
    static func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}
