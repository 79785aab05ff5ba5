internal import COpenVINO

/// A failed OpenVINO C-API call: the function, OpenVINO's status code and its message.
public struct OpenVINOError: Error, Sendable, CustomStringConvertible {
    public let function: String
    public let status: Int32
    public let message: String

    public var description: String { "OpenVINO \(function) failed (status \(status)): \(message)" }
}

/// Turns a C-API status into a thrown error carrying OpenVINO's own message.
@inline(__always)
func check(_ status: ov_status_e, _ function: String) throws {
    guard status != OK else { return }
    let info = String(cString: ov_get_error_info(status))
    let last = String(cString: ov_get_last_err_msg())
    let message = last.isEmpty ? info : "\(info): \(last)"
    throw OpenVINOError(function: function, status: Int32(status.rawValue), message: message)
}
