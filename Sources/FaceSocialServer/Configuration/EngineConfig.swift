import Foundation
import ModelRuntime

/// Which inference engine serves which device, read from the environment.
public struct EngineConfig: Sendable, Equatable {
    public enum CPUEngine: String, Sendable {
        // OpenVINO is the default: it measured several times faster than ONNX Runtime on this
        // project's models on CPU (docs/gpu.md).
        case openvino, onnxruntime
    }

    public enum GPUProvider: String, Sendable {
        case cuda, tensorrt
    }

    public var cpuEngine: CPUEngine = .openvino
    /// CUDA ordinals (as numbered after CUDA_VISIBLE_DEVICES) the server may place models on.
    public var cudaDevices: [Int] = []
    public var gpuProvider: GPUProvider = .cuda
    public var cudaMemoryLimitBytes: Int?
    public var tensorRTCacheFolder = "var/tensorrt-cache"
    public var onnxRuntimeThreads = 0

    public init() {}

    /// The device models are placed on: the first CUDA device when one is configured, else CPU.
    public var placementDevice: String {
        guard let first = cudaDevices.first else { return "CPU" }
        return gpuProvider == .tensorrt ? "TENSORRT:\(first)" : "CUDA:\(first)"
    }

    public var onnxRuntime: ONNXRuntimeEngine.Configuration {
        ONNXRuntimeEngine.Configuration(
            intraOpThreads: onnxRuntimeThreads, cudaDevices: cudaDevices, cudaMemoryLimitBytes: cudaMemoryLimitBytes,
            tensorRTCacheFolder: tensorRTCacheFolder)
    }

    static func fromEnvironment(_ env: [String: String]) throws -> EngineConfig {
        let read = EnvironmentReader(env)
        let value = read.value
        var config = EngineConfig()
        if let raw = value("FACESOCIAL_ENGINE_CPU") {
            guard let engine = CPUEngine(rawValue: raw.lowercased()) else {
                throw ConfigError.invalid(variable: "FACESOCIAL_ENGINE_CPU", reason: "expected openvino or onnxruntime")
            }
            config.cpuEngine = engine
        }
        if let raw = value("FACESOCIAL_CUDA_DEVICES"), raw.lowercased() != "none" {
            let ids = raw.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard ids.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_CUDA_DEVICES", reason: "expected CUDA ordinals like 0 or 0,1, got \"\(raw)\"")
            }
            config.cudaDevices = ids.map { $0! }
        }
        if let raw = value("FACESOCIAL_GPU_PROVIDER") {
            guard let provider = GPUProvider(rawValue: raw.lowercased()) else {
                throw ConfigError.invalid(variable: "FACESOCIAL_GPU_PROVIDER", reason: "expected cuda or tensorrt")
            }
            config.gpuProvider = provider
        }
        if let raw = value("FACESOCIAL_CUDA_MEM_LIMIT_MB") {
            guard let mb = Int(raw), mb > 0 else {
                throw ConfigError.invalid(
                    variable: "FACESOCIAL_CUDA_MEM_LIMIT_MB", reason: "expected a positive integer, got \"\(raw)\"")
            }
            config.cudaMemoryLimitBytes = mb * 1024 * 1024
        }
        if let raw = value("FACESOCIAL_TENSORRT_CACHE_DIR") { config.tensorRTCacheFolder = raw }
        if let raw = value("FACESOCIAL_ORT_THREADS") {
            guard let threads = Int(raw), (0...256).contains(threads) else {
                throw ConfigError.invalid(variable: "FACESOCIAL_ORT_THREADS", reason: "expected an integer in 0...256")
            }
            config.onnxRuntimeThreads = threads
        }
        return config
    }

    static let variables: [ConfigVariable] = [
        .init(
            name: "FACESOCIAL_ENGINE_CPU", defaultValue: "openvino",
            summary: "engine for CPU inference and CPU fallback: openvino or onnxruntime"),
        .init(
            name: "FACESOCIAL_CUDA_DEVICES", defaultValue: "(none: CPU only)",
            summary:
                "CUDA ordinals to serve models on with ONNX Runtime, e.g. 0 (after CUDA_VISIBLE_DEVICES); an unusable GPU falls back to CPU"
        ),
        .init(
            name: "CUDA_VISIBLE_DEVICES", defaultValue: "(all)",
            summary: "read by the CUDA driver: which GPUs the process sees, renumbered from 0"),
        .init(
            name: "FACESOCIAL_GPU_PROVIDER", defaultValue: "cuda",
            summary: "ONNX Runtime execution provider on GPUs: cuda, or tensorrt (with CUDA behind it)"),
        .init(
            name: "FACESOCIAL_CUDA_MEM_LIMIT_MB", defaultValue: "(no limit)",
            summary: "the CUDA provider's gpu_mem_limit per model session, in MiB"),
        .init(
            name: "FACESOCIAL_TENSORRT_CACHE_DIR", defaultValue: "var/tensorrt-cache",
            summary: "folder where TensorRT keeps built engines across restarts"),
        .init(
            name: "FACESOCIAL_ORT_THREADS", defaultValue: "0 (one per core)",
            summary: "ONNX Runtime intra-op threads per model session"),
    ]
}
