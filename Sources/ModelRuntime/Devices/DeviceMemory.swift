import Foundation

/// An engine that can say how much memory a device has and how much of it is in use.
public protocol DeviceMemoryReporting: Sendable {
    func deviceTotalBytes(_ device: String) -> Int?
    func deviceUsedBytes(_ device: String) -> Int?
}

/// A live reading of a device's memory, with where it came from.
public struct DeviceReading: Sendable, Codable, Equatable {
    public var source: String
    public var totalBytes: Int?
    public var usedBytes: Int?
    public var freeBytes: Int?
    public var detail: String?

    enum CodingKeys: String, CodingKey {
        case source, detail
        case totalBytes = "total_bytes"
        case usedBytes = "used_bytes"
        case freeBytes = "free_bytes"
    }
}

/// What a device is and who can place models on it.
public enum DeviceKind: String, Sendable, Codable {
    /// Host memory, always present.
    case cpu
    /// An OpenVINO accelerator (Intel GPU, NPU): memory from OpenVINO's device properties.
    case openvino
    /// An NVIDIA GPU seen through NVML. This build has no engine for it (the ONNX Runtime engine
    /// would place models there), so it is reported but receives no models.
    case nvidia
}

/// Finds the devices and reads their memory.
public struct DeviceInventory: Sendable {
    public struct Device: Sendable {
        public var name: String
        public var kind: DeviceKind
        public var totalBytes: Int
        public var placeable: Bool
    }

    public var devices: [Device]
    /// Why NVIDIA GPUs are not listed, when NVML could not be used.
    public var nvmlUnavailable: String?
    let engine: (any InferenceEngine)?
    let nvml: NVML?

    /// Chooses devices: `wanted` in order (nil: every OpenVINO accelerator, then the CPU), plus
    /// every NVIDIA GPU NVML reports, for the record.
    public static func discover(engine: any InferenceEngine, wanted: [String]?) throws(MemoryPolicy.Invalid)
        -> DeviceInventory
    {
        let available = (try? engine.availableDevices()) ?? ["CPU"]
        let reporter = engine as? any DeviceMemoryReporting
        let chosen = wanted ?? (available.filter { $0 != "CPU" && !$0.hasPrefix("HETERO") } + ["CPU"])
        var devices: [Device] = []
        for name in chosen {
            guard available.contains(name) || name == "CPU" else {
                throw MemoryPolicy.Invalid(
                    variable: "FACESOCIAL_DEVICES",
                    reason: "device \(name) is not available; OpenVINO sees \(available.joined(separator: ", "))")
            }
            if name == "CPU" {
                devices.append(
                    Device(name: name, kind: .cpu, totalBytes: ProcessMemory.systemMemory().total, placeable: true))
            } else {
                let total = reporter?.deviceTotalBytes(name) ?? 0
                devices.append(Device(name: name, kind: .openvino, totalBytes: total, placeable: true))
            }
        }
        var nvml: NVML?
        var reason: String?
        do {
            let library = try NVML()
            for gpu in try library.gpus() {
                devices.append(
                    Device(name: "CUDA.\(gpu.index)", kind: .nvidia, totalBytes: gpu.totalBytes, placeable: false))
            }
            nvml = library
        } catch {
            reason = error.description
        }
        return DeviceInventory(devices: devices, nvmlUnavailable: reason, engine: engine, nvml: nvml)
    }

    /// The device's memory right now, from the best source it has.
    public func reading(_ device: Device) -> DeviceReading {
        switch device.kind {
        case .cpu:
            let memory = ProcessMemory.systemMemory()
            return DeviceReading(
                source: "proc_meminfo", totalBytes: memory.total, usedBytes: memory.total - memory.available,
                freeBytes: memory.available, detail: "process RSS \(ProcessMemory.residentBytes()) bytes")
        case .openvino:
            let reporter = engine as? any DeviceMemoryReporting
            let total = reporter?.deviceTotalBytes(device.name)
            let used = reporter?.deviceUsedBytes(device.name)
            return DeviceReading(
                source: "openvino", totalBytes: total, usedBytes: used,
                freeBytes: total.flatMap { t in used.map { t - $0 } },
                detail: used == nil ? "GPU_MEMORY_STATISTICS not reported" : "this process's allocations")
        case .nvidia:
            let index = Int(device.name.split(separator: ".").last ?? "") ?? -1
            do {
                guard let gpu = try nvml?.gpus().first(where: { $0.index == index }) else {
                    return DeviceReading(source: "nvml", detail: "GPU \(index) no longer reported")
                }
                return DeviceReading(
                    source: "nvml", totalBytes: gpu.totalBytes, usedBytes: gpu.usedBytes, freeBytes: gpu.freeBytes,
                    detail: gpu.name)
            } catch {
                return DeviceReading(source: "nvml", detail: error.description)
            }
        }
    }

    /// Memory in use on a device, for measuring a model's footprint: the device's own counter
    /// where it has one, else nil (the caller falls back to the process RSS).
    func usedBytes(_ device: String) -> Int? {
        guard device != "CPU" else { return nil }
        return (engine as? any DeviceMemoryReporting)?.deviceUsedBytes(device)
    }
}
