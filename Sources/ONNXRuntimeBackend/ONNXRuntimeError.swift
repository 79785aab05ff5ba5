internal import CONNXRuntime

/// A failed ONNX Runtime C-API call: the function, ORT's error code and its own message.
public struct ONNXRuntimeError: Error, Sendable, CustomStringConvertible {
    public let function: String
    public let code: Int
    public let message: String

    public var description: String { "ONNX Runtime \(function) failed (code \(code)): \(message)" }
}

/// Turns an `OrtStatus*` into a thrown error carrying ORT's message, releasing the status.
func ortCheck(_ api: UnsafePointer<OrtApi>, _ status: OpaquePointer?, _ function: String) throws {
    guard let status else { return }
    let message = api.pointee.GetErrorMessage(status).map { String(cString: $0) } ?? "(no message)"
    let code = Int(api.pointee.GetErrorCode(status).rawValue)
    api.pointee.ReleaseStatus(status)
    throw ONNXRuntimeError(function: function, code: code, message: message)
}
