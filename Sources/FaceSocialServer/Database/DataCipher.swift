import Crypto
import Foundation

/// Encrypts embeddings at rest with AES-256-GCM. Each sealed value is stored with the id of the
/// key that sealed it, so keys can be rotated: new rows use the current key, old rows stay
/// readable through the retired keys until `facesocial keys rotate-data` re-seals them.
public struct DataCipher: Sendable {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unknownKey(String)
        case corrupt(String)

        public var description: String {
            switch self {
            case .unknownKey(let id):
                "no key with id \"\(id)\" is configured (set it in FACESOCIAL_DATA_KEYS_OLD to read these rows)"
            case .corrupt(let reason): "an encrypted value could not be opened: \(reason)"
            }
        }
    }

    public let currentKeyID: String
    // Raw key bytes: SymmetricKey is not Sendable; a key is rebuilt per use (cheap).
    private let keys: [String: Data]

    public init(currentKeyID: String, current: SymmetricKey, retired: [String: SymmetricKey] = [:]) {
        self.currentKeyID = currentKeyID
        var keys = retired.mapValues { key in key.withUnsafeBytes { Data($0) } }
        keys[currentKeyID] = current.withUnsafeBytes { Data($0) }
        self.keys = keys
    }

    public var keyIDs: [String] { keys.keys.sorted() }

    /// A short, stable id for a key when the operator names none: the first 8 hex digits of the
    /// SHA-256 of the key (it reveals nothing useful about the key itself).
    public static func fingerprint(_ key: SymmetricKey) -> String {
        let digest = key.withUnsafeBytes { SHA256.hash(data: Data($0)) }
        return digest.prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    /// Builds the key ring from the configuration's base64 keys (already validated).
    public init(config: AppConfig) throws {
        let current = try Self.key(config.dataKey, variable: "FACESOCIAL_DATA_KEY")
        var retired: [String: SymmetricKey] = [:]
        for (id, text) in config.retiredDataKeys {
            retired[id] = try Self.key(text, variable: "FACESOCIAL_DATA_KEYS_OLD")
        }
        self.init(currentKeyID: config.dataKeyID ?? Self.fingerprint(current), current: current, retired: retired)
    }

    static func key(_ base64: String, variable: String) throws -> SymmetricKey {
        guard let data = Data(base64Encoded: base64), data.count == 32 else {
            throw ConfigError.invalid(variable: variable, reason: "keys must be base64 of exactly 32 bytes")
        }
        return SymmetricKey(data: data)
    }

    /// Seals `plaintext` under the current key. `context` (for example the row id) is
    /// authenticated, so a sealed value copied onto another row fails to open.
    public func seal(_ plaintext: Data, context: String) throws -> (sealed: Data, keyID: String) {
        let box = try AES.GCM.seal(
            plaintext, using: SymmetricKey(data: keys[currentKeyID]!), authenticating: Data(context.utf8))
        guard let combined = box.combined else { throw Failure.corrupt("no combined representation") }
        return (combined, currentKeyID)
    }

    public func open(_ sealed: Data, keyID: String, context: String) throws -> Data {
        guard let key = keys[keyID] else { throw Failure.unknownKey(keyID) }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: Data(context.utf8))
        } catch {
            throw Failure.corrupt("\(error)")
        }
    }

    /// Float32 little-endian bytes of an embedding, sealed.
    public func sealEmbedding(_ values: [Float], context: String) throws -> (sealed: Data, keyID: String) {
        var data = Data(capacity: values.count * 4)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return try seal(data, context: context)
    }

    public func openEmbedding(_ sealed: Data, keyID: String, context: String) throws -> [Float] {
        let data = try open(sealed, keyID: keyID, context: context)
        guard data.count % 4 == 0 else {
            throw Failure.corrupt("embedding length \(data.count) is not a multiple of 4")
        }
        return stride(from: 0, to: data.count, by: 4).map { offset in
            let bits = data[data.startIndex + offset..<data.startIndex + offset + 4].enumerated().reduce(UInt32(0)) {
                $0 | UInt32($1.element) << (8 * UInt32($1.offset))
            }
            return Float(bitPattern: bits)
        }
    }
}
