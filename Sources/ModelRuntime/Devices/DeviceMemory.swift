import Foundation

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
    /// An NVIDIA GPU seen through NVML, served by the ONNX Runtime engine (CUDA or TensorRT
    /// provider) when it is configured and its provider attaches; otherwise reported only.
    case nvidia
}

/// Finds the devices and reads their memory.
public struct DeviceInventory: Sendable {
    public struct Device: Sendable {
        /// The memory manager's name: `CPU`, an OpenVINO device (`GPU.0`), or `CUDA.<ordinal>`
        /// (a dot, because `:` separates a device from its pool in placements).
        public var name: String
        public var kind: DeviceKind
        public var totalBytes: Int
        public var placeable: Bool
        /// The device as the engines name it (`CUDA:0`, `TENSORRT:0`), used for loads.
        public var engineDevice: String
        /// Why a device that is listed receives no models.
        public var unavailableReason: String?

        public init(
            name: String, kind: DeviceKind, totalBytes: Int, placeable: Bool, engineDevice: String? = nil,
            unavailableReason: String? = nil
        ) {
            self.name = name
            self.kind = kind
            self.totalBytes = totalBytes
            self.placeable = placeable
            self.engineDevice = engineDevice ?? name
            self.unavailableReason = unavailableReason
        }
    }

    public var devices: [Device]
    /// Why NVIDIA GPUs are not listed, when NVML could not be used.
    public var nvmlUnavailable: String?
    let engine: (any InferenceEngine)?
    let nvml: NVML?

    /// Chooses devices: `wanted` in order (nil: every usable NVIDIA GPU, then every OpenVINO
    /// accelerator, then the CPU), plus every other NVIDIA GPU NVML reports, for the record.
    ///
    /// An NVIDIA GPU receives models when NVML reports it (its total is the budget's base) and
    /// the engine serves its CUDA ordinal (`FACESOCIAL_CUDA_DEVICES`, provider attached).
    public static func discover(engine: any InferenceEngine, wanted: [String]?) throws(MemoryPolicy.Invalid)
        -> DeviceInventory
    {
        let available = (try? engine.availableDevices()) ?? ["CPU"]
        let reporter = engine as? any DeviceMemoryReporting
        var nvml: NVML?
        var nvmlReason: String?
        var gpus: [NVML.GPU] = []
        do {
            let library = try NVML()
            gpus = try library.gpus()
            nvml = library
        } catch {
            nvmlReason = error.description
        }
        // NVIDIA GPUs by memory-manager name, with the engine device that serves each (if any).
        var cuda: [String: Device] = [:]
        for gpu in gpus {
            let name = "CUDA.\(gpu.index)"
            let served = available.first {
                let device = DeviceName($0)
                return (device.kind == "CUDA" || device.kind == "TENSORRT") && device.ordinal == gpu.index
            }
            let reason =
                served == nil
                ? (engine as? EngineRouter)?.deviceAvailability().first {
                    DeviceName($0.device).ordinal == gpu.index && !$0.available
                }?.reason ?? "no engine serves CUDA:\(gpu.index) (set FACESOCIAL_CUDA_DEVICES)" : nil
            cuda[name] = Device(
                name: name, kind: .nvidia, totalBytes: gpu.totalBytes, placeable: served != nil,
                engineDevice: served ?? "CUDA:\(gpu.index)", unavailableReason: reason)
        }
        let openVINO = available.filter { DeviceName($0).kind != "CUDA" && DeviceName($0).kind != "TENSORRT" }
        let chosen =
            wanted
            ?? (cuda.values.filter(\.placeable).map(\.name).sorted()
                + openVINO.filter { $0 != "CPU" && !$0.hasPrefix("HETERO") } + ["CPU"])
        var devices: [Device] = []
        for name in chosen {
            if name == "CPU" {
                devices.append(
                    Device(name: name, kind: .cpu, totalBytes: ProcessMemory.systemMemory().total, placeable: true))
            } else if let gpu = cuda.removeValue(forKey: name) {
                devices.append(gpu)
            } else if openVINO.contains(name) {
                let total = reporter?.deviceTotalBytes(name) ?? 0
                devices.append(Device(name: name, kind: .openvino, totalBytes: total, placeable: true))
            } else {
                let seen = openVINO + cuda.keys.sorted()
                throw MemoryPolicy.Invalid(
                    variable: "FACESOCIAL_DEVICES",
                    reason: "device \(name) is not available; this server sees \(seen.joined(separator: ", "))"
                        + (nvmlReason.map { " (NVIDIA GPUs: \($0))" } ?? ""))
            }
        }
        // GPUs not chosen are still listed (and read), with no models.
        for gpu in cuda.values.sorted(by: { $0.name < $1.name }) {
            var listed = gpu
            listed.placeable = false
            listed.unavailableReason = listed.unavailableReason ?? "not in FACESOCIAL_DEVICES"
            devices.append(listed)
        }
        return DeviceInventory(devices: devices, nvmlUnavailable: nvmlReason, engine: engine, nvml: nvml)
    }

    /// The device's memory right now, from the best source it has.
    public func reading(_ device: Device) -> DeviceReading {
        switch device.kind {
        case .cpu:
            let memory = ProcessMemory.systemMemory()
            return DeviceReading(
                source: memory.cgroupLimit == nil ? "proc_meminfo" : "cgroup", totalBytes: memory.total,
                usedBytes: memory.total - memory.available, freeBytes: memory.available,
                detail: "process RSS \(ProcessMemory.residentBytes()) bytes"
                    + (memory.cgroupLimit.map { ", memory cgroup limit \($0) bytes" } ?? ""))
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
    /// where it has one (NVML's used memory for an NVIDIA GPU, which the CUDA provider's arena
    /// shows up in), else nil (the caller falls back to the process RSS).
    func usedBytes(_ device: String) -> Int? {
        guard device != "CPU" else { return nil }
        if let gpu = devices.first(where: { $0.name == device }), gpu.kind == .nvidia {
            let index = Int(device.split(separator: ".").last ?? "") ?? -1
            return (try? nvml?.gpus().first { $0.index == index })??.usedBytes
        }
        return (engine as? any DeviceMemoryReporting)?.deviceUsedBytes(device)
    }

    /// The engine's name for a memory-manager device (`CUDA.0` → `CUDA:0`).
    func engineDevice(_ device: String) -> String {
        devices.first { $0.name == device }?.engineDevice ?? device
    }
}
