import FaceKit

/// Numeric precision an engine should compute a model in. `f32` matches the reference
/// implementations; `bf16` trades a little accuracy for speed on CPUs with bf16 units; `auto` keeps
/// the engine's default for the device.
public enum InferencePrecision: String, Sendable, Codable {
    case f32, bf16, auto
}

/// How an engine should trade latency for throughput on a device.
public enum PerformanceHint: String, Sendable, Codable {
    case latency = "LATENCY"
    case throughput = "THROUGHPUT"
}

public struct SessionOptions: Sendable, Equatable {
    public var device: String
    public var precision: InferencePrecision
    public var performanceHint: PerformanceHint
    /// Parallel infer requests; nil asks the engine for its optimal number.
    public var inferRequests: Int?
    /// Static shapes for inputs that the model declares with dynamic dimensions.
    public var inputShapes: [String: [Int]]
    /// When above 1, the first (batch) dimension of every input is compiled as dynamic 1…maxBatch,
    /// so the micro-batcher can run several faces as one [N, …] tensor.
    public var maxBatch: Int
    /// When set (the manifest's `input.size_multiple`), an engine that can also accept an image
    /// input of any height and width in steps of it, up to the declared shape, does, so a detector
    /// can feed the image's own aspect instead of a padded square. Engines that cannot ignore it.
    public var flexibleSizeMultiple: Int?

    public init(
        device: String = "CPU", precision: InferencePrecision = .f32, performanceHint: PerformanceHint = .latency,
        inferRequests: Int? = nil, inputShapes: [String: [Int]] = [:], maxBatch: Int = 1,
        flexibleSizeMultiple: Int? = nil
    ) {
        self.maxBatch = maxBatch
        self.flexibleSizeMultiple = flexibleSizeMultiple
        self.device = device
        self.precision = precision
        self.performanceHint = performanceHint
        self.inferRequests = inferRequests
        self.inputShapes = inputShapes
    }
}

/// Name and shape of a model input or output (-1 marks a dynamic dimension).
public struct TensorInfo: Sendable, Equatable, Codable {
    public var name: String
    public var shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// A model compiled for one device, ready to run. Sessions are shared by every request handler and
/// run up to `concurrency` inferences at once; further callers wait for a free slot.
public protocol InferenceSession: AnyObject, TensorRunner {
    var inputs: [TensorInfo] { get }
    var outputs: [TensorInfo] { get }
    var device: String { get }
    var concurrency: Int { get }
    /// The largest batch (first input dimension) one inference accepts; 1 for static models.
    var maxBatch: Int { get }
    func infer(_ inputs: [String: Tensor]) async throws -> [String: Tensor]
}

/// A way to compile models for devices (OpenVINO here; ONNX Runtime for NVIDIA GPUs).
public protocol InferenceEngine: Sendable {
    var name: String { get }
    func availableDevices() throws -> [String]
    func load(modelAt path: String, options: SessionOptions) throws -> any InferenceSession
}

public enum InferenceError: RunnerInputError, CustomStringConvertible {
    case unknownInput(String)
    case shapeMismatch(input: String, expected: [Int], got: [Int])

    public var description: String {
        switch self {
        case .unknownInput(let name): "the model has no input named \(name)"
        case .shapeMismatch(let input, let expected, let got): "input \(input) expects shape \(expected), got \(got)"
        }
    }
}

extension InferenceSession {
    public var maxBatch: Int { 1 }

    public func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] { try await infer(inputs) }
}
