internal import COpenVINO
import EngineCore
import FaceKit
import Foundation

/// The OpenVINO engine: one `ov_core_t` for the process, from which every model is compiled.
public final class OpenVINOEngine: InferenceEngine, @unchecked Sendable {
    // The core is immutable after creation and OpenVINO documents it as thread-safe.
    private let core: OpaquePointer

    public let name = "openvino"

    public init() throws {
        var core: OpaquePointer?
        try check(ov_core_create(&core), "ov_core_create")
        self.core = core!
    }

    deinit { ov_core_free(core) }

    public func availableDevices() throws -> [String] {
        var devices = ov_available_devices_t()
        try check(ov_core_get_available_devices(core, &devices), "ov_core_get_available_devices")
        defer { ov_available_devices_free(&devices) }
        return (0..<devices.size).compactMap { devices.devices[$0].map { String(cString: $0) } }
    }

    /// Reads a device property as a string (e.g. `FULL_DEVICE_NAME`, `GPU_DEVICE_TOTAL_MEM_SIZE`).
    public func property(_ key: String, device: String) throws -> String {
        var value: UnsafeMutablePointer<CChar>?
        try check(ov_core_get_property(core, device, key, &value), "ov_core_get_property(\(key))")
        defer { ov_free(value) }
        return value.map { String(cString: $0) } ?? ""
    }

    public func load(modelAt path: String, options: SessionOptions) throws -> any InferenceSession {
        try OpenVINOSession(core: core, path: path, options: options)
    }
}

/// One compiled model with a pool of infer requests.
final class OpenVINOSession: InferenceSession, @unchecked Sendable {
    // Handles are created in init and released in deinit; each infer request is used by one caller
    // at a time, enforced by `slots`.
    private let compiled: Compiled
    /// The same model compiled with its image input's height and width dynamic, for inputs
    /// shaped to the image (`SessionOptions.flexibleSizeMultiple`); the declared shape keeps the
    /// static compile, which runs it faster.
    private let flexible: Compiled?
    private let inputIndex: [String: Int]
    let inputs: [TensorInfo]
    let outputs: [TensorInfo]
    let device: String
    let maxBatch: Int
    let flexibleSizeMultiple: Int?
    var concurrency: Int { compiled.requests.count }

    /// One compiled model with its infer requests; `slots` lends each request to one caller.
    private final class Compiled: @unchecked Sendable {
        let handle: OpaquePointer
        let requests: [OpaquePointer]
        let slots: SlotPool

        init(
            core: OpaquePointer, model: OpaquePointer, device: String, properties: [(String, String)],
            inferRequests: Int?
        ) throws {
            var compiled: OpaquePointer?
            try OpenVINOSession.withCStrings(properties.map(\.0)) { keys in
                try OpenVINOSession.withCStrings(properties.map(\.1)) { values in
                    try check(
                        fs_ov_compile_model(core, model, device, properties.count, keys, values, &compiled),
                        "ov_core_compile_model(\(device))")
                }
            }
            var optimal = inferRequests ?? 1
            if inferRequests == nil {
                var value: UnsafeMutablePointer<CChar>?
                if ov_compiled_model_get_property(compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS", &value) == OK,
                    let value
                {
                    optimal = max(1, Int(String(cString: value)) ?? 1)
                    ov_free(value)
                }
            }
            var requests: [OpaquePointer] = []
            for _ in 0..<optimal {
                var request: OpaquePointer?
                do {
                    try check(
                        ov_compiled_model_create_infer_request(compiled, &request),
                        "ov_compiled_model_create_infer_request")
                } catch {
                    requests.forEach { ov_infer_request_free($0) }
                    ov_compiled_model_free(compiled)
                    throw error
                }
                requests.append(request!)
            }
            self.handle = compiled!
            self.requests = requests
            self.slots = SlotPool(count: requests.count)
        }

        deinit {
            requests.forEach { ov_infer_request_free($0) }
            ov_compiled_model_free(handle)
        }
    }

    init(core: OpaquePointer, path: String, options: SessionOptions) throws {
        var model: OpaquePointer?
        try check(ov_core_read_model(core, path, nil, &model), "ov_core_read_model(\(path))")
        defer { ov_model_free(model) }

        // Make dynamic inputs static: the CPU plugin is fastest with static shapes.
        var inputCount = 0
        try check(ov_model_inputs_size(model, &inputCount), "ov_model_inputs_size")
        var declared: [TensorInfo] = []
        for index in 0..<inputCount {
            var info = try Self.portInfo(model: model!, index: index, input: true)
            if options.maxBatch > 1 {
                // A dynamic batch dimension: the other dimensions come from the configured shape
                // or the model's own static ones.
                let base = options.inputShapes[info.name] ?? info.shape
                guard !base.dropFirst().contains(-1), !base.isEmpty else {
                    throw OpenVINOError(
                        function: "reshape", status: -1,
                        message: "input \(info.name) has dynamic shape \(base); configure a static one")
                }
                let dims = base.map(Int64.init)
                try check(
                    fs_ov_reshape_input_bounds(
                        model, index, [1] + dims.dropFirst(), [Int64(options.maxBatch)] + dims.dropFirst(), dims.count),
                    "ov_model_reshape(\(info.name), batch 1…\(options.maxBatch))")
                info.shape = [-1] + base.dropFirst()
            } else if info.shape.contains(-1) {
                guard let wanted = options.inputShapes[info.name] else {
                    throw OpenVINOError(
                        function: "reshape", status: -1,
                        message: "input \(info.name) has dynamic shape \(info.shape); configure a static one")
                }
                let dims = wanted.map(Int64.init)
                try check(fs_ov_reshape_input(model, index, dims, dims.count), "ov_model_reshape(\(info.name))")
                info.shape = wanted
            }
            declared.append(info)
        }

        var properties: [(String, String)] = [("PERFORMANCE_HINT", options.performanceHint.rawValue)]
        switch options.precision {
        case .f32: properties.append(("INFERENCE_PRECISION_HINT", "f32"))
        // Without native bf16 instructions OpenVINO emulates bf16 on AVX-512, slower than f32.
        case .bf16: properties.append(("INFERENCE_PRECISION_HINT", Self.nativeBF16 ? "bf16" : "f32"))
        case .auto: break
        }
        if let n = options.inferRequests { properties.append(("PERFORMANCE_HINT_NUM_REQUESTS", String(n))) }
        compiled = try Compiled(
            core: core, model: model!, device: options.device, properties: properties,
            inferRequests: options.inferRequests)

        var outputCount = 0
        try check(ov_model_outputs_size(model, &outputCount), "ov_model_outputs_size")
        var outputs: [TensorInfo] = []
        for index in 0..<outputCount { outputs.append(try Self.portInfo(model: model!, index: index, input: false)) }

        // An NCHW image input (one input, no batching) may also run at the image's own size. Should
        // that compile fail, the session still serves the declared shape, which always runs.
        var flexible: Compiled?
        if let step = options.flexibleSizeMultiple, step > 0, options.maxBatch == 1, declared.count == 1,
            declared[0].shape.count == 4, declared[0].shape[2] % step == 0, declared[0].shape[3] % step == 0
        {
            let dims = declared[0].shape.map(Int64.init)
            flexible = try? {
                try check(
                    fs_ov_reshape_input_bounds(
                        model, 0, [dims[0], dims[1], Int64(step), Int64(step)], dims, dims.count),
                    "ov_model_reshape(\(declared[0].name), height and width \(step)…)")
                return try Compiled(
                    core: core, model: model!, device: options.device, properties: properties,
                    inferRequests: options.inferRequests)
            }()
        }
        self.flexible = flexible
        flexibleSizeMultiple = flexible == nil ? nil : options.flexibleSizeMultiple
        self.inputs = declared
        self.outputs = outputs
        self.device = options.device
        self.maxBatch = max(1, options.maxBatch)
        self.inputIndex = Dictionary(uniqueKeysWithValues: declared.enumerated().map { ($1.name, $0) })
    }

    func infer(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        var target = compiled
        for (name, tensor) in inputs {
            guard let index = inputIndex[name] else { throw InferenceError.unknownInput(name) }
            let expected = self.inputs[index].shape
            // -1 is the dynamic batch dimension: any size up to maxBatch.
            let matches =
                expected.count == tensor.shape.count
                && zip(expected, tensor.shape).allSatisfy { $0 == $1 || ($0 == -1 && (1...maxBatch).contains($1)) }
            if matches { continue }
            if let flexible, let step = flexibleSizeMultiple, Self.fits(tensor.shape, within: expected, step: step) {
                target = flexible
                continue
            }
            throw InferenceError.shapeMismatch(input: name, expected: expected, got: tensor.shape)
        }
        let chosen = target
        let slot = await chosen.slots.acquire()
        // Inference blocks its thread; keep it off the caller's (event loop or cooperative) thread.
        let result = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(returning: Result { try self.run(chosen.requests[slot], inputs) })
            }
        }
        await chosen.slots.release(slot)
        return try result.get()
    }

    /// Whether an NCHW shape has the declared batch and channels and a height and width in steps
    /// of `step`, no larger than declared.
    static func fits(_ shape: [Int], within declared: [Int], step: Int) -> Bool {
        guard shape.count == 4, declared.count == 4, shape[0] == declared[0], shape[1] == declared[1] else {
            return false
        }
        return (2...3).allSatisfy { shape[$0] > 0 && shape[$0] <= declared[$0] && shape[$0] % step == 0 }
    }

    private func run(_ request: OpaquePointer, _ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var bound: [OpaquePointer] = []
        defer { bound.forEach { ov_tensor_free($0) } }
        let ordered = Array(inputs)
        // The input tensors wrap our buffers without copying (OpenVINO only reads them), so the
        // buffers must stay pinned until inference returns: bind them in nested pointer scopes.
        func bind(_ position: Int) throws {
            if position == ordered.count {
                try check(ov_infer_request_infer(request), "ov_infer_request_infer")
                return
            }
            let (name, input) = ordered[position]
            let dims = input.shape.map(Int64.init)
            try input.data.withUnsafeBufferPointer { data in
                var tensor: OpaquePointer?
                try check(
                    fs_ov_tensor_f32(dims, dims.count, UnsafeMutablePointer(mutating: data.baseAddress), &tensor),
                    "ov_tensor_create_from_host_ptr")
                bound.append(tensor!)
                try check(
                    ov_infer_request_set_input_tensor_by_index(request, inputIndex[name]!, tensor),
                    "ov_infer_request_set_input_tensor")
                try bind(position + 1)
            }
        }
        try bind(0)

        var results: [String: Tensor] = [:]
        for (index, info) in outputs.enumerated() {
            var tensor: OpaquePointer?
            try check(
                ov_infer_request_get_output_tensor_by_index(request, index, &tensor),
                "ov_infer_request_get_output_tensor")
            defer { ov_tensor_free(tensor) }
            var type = ov_element_type_e(0)
            try check(ov_tensor_get_element_type(tensor, &type), "ov_tensor_get_element_type")
            guard type == F32 else {
                throw OpenVINOError(function: "output", status: -1, message: "output \(info.name) is not float32")
            }
            var dims = [Int64](repeating: 0, count: 8)
            var rank = 0
            try check(fs_ov_tensor_dims(tensor, &dims, dims.count, &rank), "ov_tensor_get_shape")
            var raw: UnsafeMutableRawPointer?
            try check(ov_tensor_data(tensor, &raw), "ov_tensor_data")
            let shape = dims[0..<rank].map(Int.init)
            let count = shape.reduce(1, *)
            let values = Array(UnsafeBufferPointer(start: raw!.assumingMemoryBound(to: Float.self), count: count))
            results[info.name] = Tensor(shape: shape, data: values)
        }
        return results
    }

    private static func portInfo(model: OpaquePointer, index: Int, input: Bool) throws -> TensorInfo {
        var port: OpaquePointer?
        if input {
            try check(ov_model_const_input_by_index(model, index, &port), "ov_model_const_input_by_index")
        } else {
            try check(ov_model_const_output_by_index(model, index, &port), "ov_model_const_output_by_index")
        }
        defer { ov_output_const_port_free(port) }
        var name: UnsafeMutablePointer<CChar>?
        try check(ov_port_get_any_name(port, &name), "ov_port_get_any_name")
        defer { ov_free(name) }
        var dims = [Int64](repeating: 0, count: 8)
        var rank = 0
        try check(fs_ov_port_dims(port, &dims, dims.count, &rank), "ov_port_get_partial_shape")
        return TensorInfo(name: String(cString: name!), shape: dims[0..<rank].map(Int.init))
    }

    /// Whether this CPU computes bf16 natively (AVX512_BF16 or AMX), from /proc/cpuinfo's flags.
    static let nativeBF16: Bool = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flags = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let set = Set(flags.split(separator: " ").map(String.init))
        return set.contains("avx512_bf16") || set.contains("amx_bf16")
    }()

    fileprivate static func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows
        -> R
    {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return try body(copies.map { UnsafePointer($0) })
    }
}

extension OpenVINOEngine: DeviceMemoryReporting {
    /// `GPU_DEVICE_TOTAL_MEM_SIZE` (Intel GPUs) or `NPU_DEVICE_TOTAL_MEM_SIZE`, in bytes.
    public func deviceTotalBytes(_ device: String) -> Int? {
        let key = device.hasPrefix("NPU") ? "NPU_DEVICE_TOTAL_MEM_SIZE" : "GPU_DEVICE_TOTAL_MEM_SIZE"
        return (try? property(key, device: device)).flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// `GPU_MEMORY_STATISTICS`: this process's allocations on the device by kind, e.g.
    /// `{cl_mem:0,usm_device:123,usm_host:45}`. Host-side (usm_host) memory is RAM, not the device's.
    public func deviceUsedBytes(_ device: String) -> Int? {
        guard device.hasPrefix("GPU"), let text = try? property("GPU_MEMORY_STATISTICS", device: device) else {
            return nil
        }
        let statistics = Self.parseMemoryStatistics(text)
        guard !statistics.isEmpty else { return nil }
        return statistics.filter { $0.key != "usm_host" }.values.reduce(0, +)
    }

    static func parseMemoryStatistics(_ text: String) -> [String: Int] {
        var result: [String: Int] = [:]
        let trimmed = text.trimmingCharacters(in: CharacterSet(charactersIn: "{} \n"))
        for item in trimmed.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, let value = Int(parts[1]) { result[parts[0]] = value }
        }
        return result
    }
}
