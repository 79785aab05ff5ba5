/// An engine that can say how much memory a device has and how much of it is in use.
public protocol DeviceMemoryReporting: Sendable {
    func deviceTotalBytes(_ device: String) -> Int?
    func deviceUsedBytes(_ device: String) -> Int?
}
