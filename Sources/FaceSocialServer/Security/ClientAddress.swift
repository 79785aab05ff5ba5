import Foundation
import Vapor

#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `::1`, `192.168.1.7`), for FACESOCIAL_TRUSTED_PROXIES.
public struct IPNetwork: Sendable, Equatable {
    let bytes: [UInt8]
    let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let bytes = Self.parse(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...bits).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = bits
        }
        self.bytes = bytes
    }

    /// 4 or 16 bytes for an address in either notation (an IPv4-mapped IPv6 address becomes IPv4).
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }

    public func contains(_ address: String) -> Bool {
        guard let other = Self.parse(address), other.count == bytes.count else { return false }
        var remaining = prefixLength
        for (a, b) in zip(bytes, other) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            guard a & mask == b & mask else { return false }
            remaining -= 8
        }
        return true
    }
}

extension Request {
    /// True when a trusted proxy says the client spoke HTTPS to it (`X-Forwarded-Proto: https`).
    var forwardedOverHTTPS: Bool {
        guard let peer = remoteAddress?.ipAddress,
            (application.security?.config.trustedProxies ?? []).contains(where: { $0.contains(peer) })
        else { return false }
        return headers.first(name: "X-Forwarded-Proto")?.split(separator: ",").first?
            .trimmingCharacters(in: .whitespaces).lowercased() == "https"
    }

    /// The client's address for rate limits and audit rows. Behind a proxy listed in
    /// FACESOCIAL_TRUSTED_PROXIES it is the right-most X-Forwarded-For entry that is not itself a
    /// trusted proxy (entries further left are whatever the client chose to send); from any other
    /// peer the header is ignored, so it cannot be used to dodge a limit.
    public var clientAddress: String? {
        guard let peer = remoteAddress?.ipAddress else { return nil }
        let proxies = application.security?.config.trustedProxies ?? []
        func trusted(_ address: String) -> Bool { proxies.contains { $0.contains(address) } }
        guard trusted(peer) else { return peer }
        let hops = headers[.xForwardedFor].flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        for hop in hops.reversed() where !trusted(hop) {
            // A malformed entry ends the chain: nothing left of it can be trusted either.
            return IPNetwork.parse(hop) != nil ? hop : peer
        }
        return hops.first.flatMap { IPNetwork.parse($0) != nil ? $0 : nil } ?? peer
    }
}
