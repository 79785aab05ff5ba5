internal import CONNXRuntime
import EngineCore
import FaceKit
import Foundation

/// The process-wide ONNX Runtime state: the function table, one `OrtEnv` (ORT allows one per
/// process; it lives as long as the process, so it is never released), the default CPU allocator
/// and the memory description of our own input buffers.
final class ORTEnvironment: @unchecked Sendable {
    // Everything here is created once and only read afterwards; ORT documents these as thread-safe.
    let api: UnsafePointer<OrtApi>
    let env: OpaquePointer
    let cpuMemory: OpaquePointer
    let allocator: UnsafeMutablePointer<OrtAllocator>

    static let shared: Result<ORTEnvironment, any Error> = Result { try ORTEnvironment() }

    private init() throws {
        guard let api = fs_ort_api() else {
            throw ONNXRuntimeError(
                function: "GetApi(\(fs_ort_api_version()))", code: -1,
                message: "libonnxruntime \(String(cString: fs_ort_library_version())) is older than the header")
        }
        self.api = api
        var env: OpaquePointer?
        try ortCheck(api, api.pointee.CreateEnv(ORT_LOGGING_LEVEL_WARNING, "facesocial", &env), "CreateEnv")
        self.env = env!
        var memory: OpaquePointer?
        try ortCheck(
            api, api.pointee.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory), "CreateCpuMemoryInfo")
        cpuMemory = memory!
        var allocator: UnsafeMutablePointer<OrtAllocator>?
        try ortCheck(api, api.pointee.GetAllocatorWithDefaultOptions(&allocator), "GetAllocatorWithDefaultOptions")
        self.allocator = allocator!
    }

    func check(_ status: OpaquePointer?, _ function: String) throws { try ortCheck(api, status, function) }
}

/// The ONNX Runtime engine: CPU, and NVIDIA GPUs through the CUDA and TensorRT execution
/// providers. Devices are named "CPU", "CUDA:<id>" and "TENSORRT:<id>" (ids as CUDA numbers them,
/// i.e. after CUDA_VISIBLE_DEVICES).
public final class ONNXRuntimeEngine: InferenceEngine, DeviceProbing, @unchecked Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Intra-op threads per session; 0 lets ORT use one per physical core.
        public var intraOpThreads: Int
        /// CUDA devices to offer (ordinals after CUDA_VISIBLE_DEVICES).
        public var cudaDevices: [Int]
        /// The CUDA provider's `gpu_mem_limit` per session in bytes; nil keeps ORT's (no limit).
        public var cudaMemoryLimitBytes: Int?
        /// Where TensorRT keeps built engines, so a restart does not rebuild them.
        public var tensorRTCacheFolder: String

        public init(
            intraOpThreads: Int = 0, cudaDevices: [Int] = [], cudaMemoryLimitBytes: Int? = nil,
            tensorRTCacheFolder: String = "var/tensorrt-cache"
        ) {
            self.intraOpThreads = intraOpThreads
            self.cudaDevices = cudaDevices
            self.cudaMemoryLimitBytes = cudaMemoryLimitBytes
            self.tensorRTCacheFolder = tensorRTCacheFolder
        }
    }

    enum Provider: Equatable {
        case cpu
        case cuda(Int)
        case tensorRT(Int)
    }

    // Immutable after init.
    private let environment: ORTEnvironment
    public let configuration: Configuration
    public let name = "onnxruntime"

    public init(configuration: Configuration = Configuration()) throws {
        environment = try ORTEnvironment.shared.get()
        self.configuration = configuration
    }

    /// The version of the loaded library (e.g. "1.31.1").
    public var libraryVersion: String { String(cString: fs_ort_library_version()) }

    /// The execution providers compiled into the loaded library (e.g. CPUExecutionProvider,
    /// CUDAExecutionProvider).
    public func compiledProviders() throws -> [String] {
        let api = environment.api
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var count: Int32 = 0
        try environment.check(api.pointee.GetAvailableProviders(&names, &count), "GetAvailableProviders")
        defer { _ = api.pointee.ReleaseAvailableProviders(names, count) }
        return (0..<Int(count)).compactMap { names?[$0].map { String(cString: $0) } }
    }

    public func availableDevices() throws -> [String] {
        ["CPU"] + configuration.cudaDevices.map { "CUDA:\($0)" }.filter { probe(device: $0).available }
    }

    /// Attaches the device's provider to throw-away session options: this fails when the library
    /// has no such provider or the provider's libraries cannot be loaded. (A missing GPU or driver
    /// can only show when a session is created; `load` reports that as `DeviceUnavailableError`.)
    public func probe(device: String) -> DeviceAvailability {
        do {
            let provider = try Self.provider(for: device)
            let api = environment.api
            var options: OpaquePointer?
            try environment.check(api.pointee.CreateSessionOptions(&options), "CreateSessionOptions")
            defer { api.pointee.ReleaseSessionOptions(options) }
            try attach(provider, to: options!, precision: .f32)
            return DeviceAvailability(device: device, engine: name, available: true)
        } catch let error as DeviceUnavailableError {
            return DeviceAvailability(device: device, engine: name, available: false, reason: error.reason)
        } catch {
            return DeviceAvailability(device: device, engine: name, available: false, reason: "\(error)")
        }
    }

    public func load(modelAt path: String, options: SessionOptions) throws -> any InferenceSession {
        let provider = try Self.provider(for: options.device)
        do {
            return try ONNXRuntimeSession(engine: self, path: path, options: options, provider: provider)
        } catch let error as DeviceUnavailableError {
            throw error
        } catch  where provider != .cpu {
            // Was it the accelerator or the model? If the same model loads on CPU, it was the
            // accelerator (no device, no driver, a provider library that failed to load).
            var cpuOptions = options
            cpuOptions.device = "CPU"
            guard (try? ONNXRuntimeSession(engine: self, path: path, options: cpuOptions, provider: .cpu)) != nil else {
                throw error
            }
            throw DeviceUnavailableError(device: options.device, reason: "\(error)")
        }
    }

    static func provider(for device: String) throws -> Provider {
        let name = DeviceName(device)
        switch name.kind {
        case "CPU": return .cpu
        case "CUDA", "GPU": return .cuda(name.ordinal ?? 0)
        case "TENSORRT", "TRT": return .tensorRT(name.ordinal ?? 0)
        default:
            throw ONNXRuntimeError(
                function: "device", code: -1,
                message: "unknown device \(device); expected CPU, CUDA:<n> or TENSORRT:<n>")
        }
    }

    /// Appends the execution providers for `provider` (TensorRT also gets CUDA behind it for the
    /// nodes TensorRT does not take). A failure to attach is a `DeviceUnavailableError`.
    func attach(_ provider: Provider, to options: OpaquePointer, precision: InferencePrecision) throws {
        let api = environment.api
        switch provider {
        case .cpu:
            return
        case .cuda(let id):
            try attachCUDA(id, to: options, device: "CUDA:\(id)")
        case .tensorRT(let id):
            let device = "TENSORRT:\(id)"
            do {
                var trt: OpaquePointer?
                try environment.check(api.pointee.CreateTensorRTProviderOptions(&trt), "CreateTensorRTProviderOptions")
                defer { api.pointee.ReleaseTensorRTProviderOptions(trt) }
                try FileManager.default.createDirectory(
                    atPath: configuration.tensorRTCacheFolder, withIntermediateDirectories: true)
                try withCStringPairs([
                    ("device_id", String(id)), ("trt_engine_cache_enable", "1"),
                    ("trt_engine_cache_path", configuration.tensorRTCacheFolder),
                    ("trt_fp16_enable", precision == .f32 ? "0" : "1"),
                ]) { keys, values, count in
                    try environment.check(
                        api.pointee.UpdateTensorRTProviderOptions(trt, keys, values, count),
                        "UpdateTensorRTProviderOptions")
                }
                try environment.check(
                    api.pointee.SessionOptionsAppendExecutionProvider_TensorRT_V2(options, trt),
                    "SessionOptionsAppendExecutionProvider_TensorRT_V2")
            } catch let error as ONNXRuntimeError {
                throw DeviceUnavailableError(device: device, reason: error.description)
            }
            try attachCUDA(id, to: options, device: device)
        }
    }

    private func attachCUDA(_ id: Int, to options: OpaquePointer, device: String) throws {
        let api = environment.api
        do {
            var cuda: OpaquePointer?
            try environment.check(api.pointee.CreateCUDAProviderOptions(&cuda), "CreateCUDAProviderOptions")
            defer { api.pointee.ReleaseCUDAProviderOptions(cuda) }
            // kSameAsRequested: the arena grows by what is asked, not by doubling, so the memory a
            // model holds stays close to what it needs (and what NVML shows for it).
            var pairs = [("device_id", String(id)), ("arena_extend_strategy", "kSameAsRequested")]
            if let limit = configuration.cudaMemoryLimitBytes { pairs.append(("gpu_mem_limit", String(limit))) }
            try withCStringPairs(pairs) { keys, values, count in
                try environment.check(
                    api.pointee.UpdateCUDAProviderOptions(cuda, keys, values, count), "UpdateCUDAProviderOptions")
            }
            try environment.check(
                api.pointee.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda),
                "SessionOptionsAppendExecutionProvider_CUDA_V2")
        } catch let error as ONNXRuntimeError {
            throw DeviceUnavailableError(device: device, reason: error.description)
        }
    }

    fileprivate var env: ORTEnvironment { environment }
}

/// Calls `body` with C string arrays of the keys and values, valid for the call only.
func withCStringPairs<R>(
    _ pairs: [(String, String)],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>, Int) throws -> R
) rethrows -> R {
    let keys = pairs.map { UnsafePointer(strdup($0.0)) }
    let values = pairs.map { UnsafePointer(strdup($0.1)) }
    defer {
        keys.forEach { free(UnsafeMutablePointer(mutating: $0)) }
        values.forEach { free(UnsafeMutablePointer(mutating: $0)) }
    }
    return try keys.withUnsafeBufferPointer { k in
        try values.withUnsafeBufferPointer { v in try body(k.baseAddress!, v.baseAddress!, pairs.count) }
    }
}

/// One ORT session. `Run` is thread-safe in ORT; the slot pool only bounds how many run at once so
/// concurrent requests do not oversubscribe the intra-op thread pool.
final class ONNXRuntimeSession: InferenceSession, @unchecked Sendable {
    // Handles are created in init and released in deinit; the name buffers are read-only.
    private let environment: ORTEnvironment
    private let session: OpaquePointer
    private let slots: SlotPool
    private let inputNames: [UnsafeMutablePointer<CChar>?]
    private let outputNames: [UnsafeMutablePointer<CChar>?]
    private let inputIndex: [String: Int]
    let inputs: [TensorInfo]
    let outputs: [TensorInfo]
    let device: String
    let concurrency: Int

    init(engine: ONNXRuntimeEngine, path: String, options: SessionOptions, provider: ONNXRuntimeEngine.Provider) throws
    {
        let environment = engine.env
        let api = environment.api
        self.environment = environment

        var sessionOptions: OpaquePointer?
        try environment.check(api.pointee.CreateSessionOptions(&sessionOptions), "CreateSessionOptions")
        defer { api.pointee.ReleaseSessionOptions(sessionOptions) }
        try environment.check(
            api.pointee.SetIntraOpNumThreads(sessionOptions, Int32(engine.configuration.intraOpThreads)),
            "SetIntraOpNumThreads")
        try environment.check(
            api.pointee.SetSessionGraphOptimizationLevel(sessionOptions, ORT_ENABLE_ALL),
            "SetSessionGraphOptimizationLevel")
        try engine.attach(provider, to: sessionOptions!, precision: options.precision)

        var session: OpaquePointer?
        try environment.check(
            api.pointee.CreateSession(environment.env, path, sessionOptions, &session), "CreateSession(\(path))")
        self.session = session!

        do {
            var declared = try Self.ports(environment, session!, input: true)
            for index in declared.indices where declared[index].shape.contains(-1) {
                if let wanted = options.inputShapes[declared[index].name] { declared[index].shape = wanted }
            }
            inputs = declared
            outputs = try Self.ports(environment, session!, input: false)
        } catch {
            api.pointee.ReleaseSession(session)
            throw error
        }
        inputNames = inputs.map { strdup($0.name) }
        outputNames = outputs.map { strdup($0.name) }
        inputIndex = Dictionary(uniqueKeysWithValues: inputs.enumerated().map { ($1.name, $0) })
        device = options.device
        concurrency = max(1, options.inferRequests ?? 1)
        slots = SlotPool(count: concurrency)
    }

    deinit {
        environment.api.pointee.ReleaseSession(session)
        inputNames.forEach { free($0) }
        outputNames.forEach { free($0) }
    }

    func infer(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        for (name, tensor) in inputs {
            guard let index = inputIndex[name] else { throw InferenceError.unknownInput(name) }
            let expected = self.inputs[index].shape
            let matches =
                expected.count == tensor.shape.count && zip(expected, tensor.shape).allSatisfy { $0 == -1 || $0 == $1 }
            guard matches else {
                throw InferenceError.shapeMismatch(input: name, expected: expected, got: tensor.shape)
            }
        }
        let slot = await slots.acquire()
        // Inference blocks its thread; keep it off the caller's (event loop or cooperative) thread.
        let result = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(returning: Result { try self.execute(inputs) })
            }
        }
        await slots.release(slot)
        return try result.get()
    }

    private func execute(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let api = environment.api
        var values: [OpaquePointer?] = []
        defer { values.forEach { api.pointee.ReleaseValue($0) } }
        let ordered = inputs.sorted { inputIndex[$0.key]! < inputIndex[$1.key]! }
        let names: [UnsafePointer<CChar>?] = ordered.map { UnsafePointer(inputNames[inputIndex[$0.key]!]) }
        var outputValues = [OpaquePointer?](repeating: nil, count: outputs.count)
        defer { outputValues.forEach { api.pointee.ReleaseValue($0) } }

        // The input values wrap our buffers without copying (ORT only reads them), so each buffer
        // stays pinned until Run returns: bind them in nested pointer scopes.
        func bind(_ position: Int) throws {
            if position == ordered.count {
                let outputNamePointers = outputNames.map { UnsafePointer($0) }
                try environment.check(
                    api.pointee.Run(
                        session, nil, names, values, ordered.count, outputNamePointers, outputs.count, &outputValues),
                    "Run")
                return
            }
            let tensor = ordered[position].value
            let dims = tensor.shape.map(Int64.init)
            try tensor.data.withUnsafeBufferPointer { data in
                var value: OpaquePointer?
                try environment.check(
                    api.pointee.CreateTensorWithDataAsOrtValue(
                        environment.cpuMemory, UnsafeMutableRawPointer(mutating: data.baseAddress),
                        data.count * MemoryLayout<Float>.stride, dims, dims.count, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                        &value),
                    "CreateTensorWithDataAsOrtValue")
                values.append(value)
                try bind(position + 1)
            }
        }
        try bind(0)

        var results: [String: Tensor] = [:]
        for (index, info) in outputs.enumerated() {
            let value = outputValues[index]
            var shapeInfo: OpaquePointer?
            try environment.check(api.pointee.GetTensorTypeAndShape(value, &shapeInfo), "GetTensorTypeAndShape")
            defer { api.pointee.ReleaseTensorTypeAndShapeInfo(shapeInfo) }
            var type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
            try environment.check(api.pointee.GetTensorElementType(shapeInfo, &type), "GetTensorElementType")
            guard type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT else {
                throw ONNXRuntimeError(function: "output", code: -1, message: "output \(info.name) is not float32")
            }
            let shape = try Self.dimensions(environment, shapeInfo!)
            let count = shape.reduce(1, *)
            var raw: UnsafeMutableRawPointer?
            try environment.check(api.pointee.GetTensorMutableData(value, &raw), "GetTensorMutableData")
            let floats = raw.map {
                Array(UnsafeBufferPointer(start: $0.assumingMemoryBound(to: Float.self), count: count))
            }
            results[info.name] = Tensor(shape: shape, data: floats ?? [])
        }
        return results
    }

    private static func dimensions(_ environment: ORTEnvironment, _ info: OpaquePointer) throws -> [Int] {
        let api = environment.api
        var rank = 0
        try environment.check(api.pointee.GetDimensionsCount(info, &rank), "GetDimensionsCount")
        var dims = [Int64](repeating: 0, count: rank)
        try environment.check(api.pointee.GetDimensions(info, &dims, rank), "GetDimensions")
        return dims.map(Int.init)
    }

    private static func ports(_ environment: ORTEnvironment, _ session: OpaquePointer, input: Bool) throws
        -> [TensorInfo]
    {
        let api = environment.api
        var count = 0
        if input {
            try environment.check(api.pointee.SessionGetInputCount(session, &count), "SessionGetInputCount")
        } else {
            try environment.check(api.pointee.SessionGetOutputCount(session, &count), "SessionGetOutputCount")
        }
        var ports: [TensorInfo] = []
        for index in 0..<count {
            var name: UnsafeMutablePointer<CChar>?
            var typeInfo: OpaquePointer?
            if input {
                try environment.check(
                    api.pointee.SessionGetInputName(session, index, environment.allocator, &name), "SessionGetInputName"
                )
            } else {
                try environment.check(
                    api.pointee.SessionGetOutputName(session, index, environment.allocator, &name),
                    "SessionGetOutputName")
            }
            defer { _ = api.pointee.AllocatorFree(environment.allocator, name) }
            if input {
                try environment.check(
                    api.pointee.SessionGetInputTypeInfo(session, index, &typeInfo), "SessionGetInputTypeInfo")
            } else {
                try environment.check(
                    api.pointee.SessionGetOutputTypeInfo(session, index, &typeInfo), "SessionGetOutputTypeInfo")
            }
            defer { api.pointee.ReleaseTypeInfo(typeInfo) }
            var tensorInfo: OpaquePointer?
            try environment.check(
                api.pointee.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo), "CastTypeInfoToTensorInfo")
            guard let tensorInfo else {
                throw ONNXRuntimeError(function: "ports", code: -1, message: "port \(index) is not a tensor")
            }
            ports.append(TensorInfo(name: String(cString: name!), shape: try dimensions(environment, tensorInfo)))
        }
        return ports
    }
}
