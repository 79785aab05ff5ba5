/// Whether an engine can run models on a device, and if not, why (for logs and `/system/vram`).
public struct DeviceAvailability: Sendable, Equatable, Codable {
    public var device: String
    public var engine: String
    public var available: Bool
    public var reason: String?

    public init(device: String, engine: String, available: Bool, reason: String? = nil) {
        self.device = device
        self.engine = engine
        self.available = available
        self.reason = reason
    }
}

/// An accelerator that could not be attached (no GPU, no driver, a missing provider library). The
/// model itself is fine: the same load on CPU is expected to work.
public struct DeviceUnavailableError: Error, Sendable, CustomStringConvertible {
    public let device: String
    public let reason: String

    public init(device: String, reason: String) {
        self.device = device
        self.reason = reason
    }

    public var description: String { "device \(device) is unavailable: \(reason)" }
}

/// Engines that can check a device without loading a model.
public protocol DeviceProbing: Sendable {
    func probe(device: String) -> DeviceAvailability
}

/// A device name split into its kind and ordinal: "CUDA:1" → ("CUDA", 1); "CPU" → ("CPU", nil).
public struct DeviceName: Sendable, Equatable {
    public let kind: String
    public let ordinal: Int?

    public init(_ name: String) {
        let parts = name.split(separator: ":", maxSplits: 1)
        kind = parts.first.map { $0.uppercased() } ?? "CPU"
        ordinal = parts.count == 2 ? Int(parts[1]) : nil
    }
}
