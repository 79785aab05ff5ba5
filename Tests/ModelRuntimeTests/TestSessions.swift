import FaceKit
import Foundation

@testable import ModelRuntime

/// One OpenVINO engine and one compiled session per model file and precision, shared by the
/// model tests' fixtures. Sessions compile inside the actor, so concurrent first uses share one
/// load.
actor TestSessions {
    static let shared = TestSessions()

    private var engine: OpenVINOEngine?
    private var sessions: [String: any InferenceSession] = [:]

    func session(
        _ file: String, input: String, shape: [Int], precision: InferencePrecision = .f32,
        flexibleSizeMultiple: Int? = nil
    ) throws -> any InferenceSession {
        let key = "\(file) \(precision) \(flexibleSizeMultiple ?? 0)"
        if let session = sessions[key] { return session }
        let engine = try engine ?? OpenVINOEngine()
        self.engine = engine
        let session = try engine.load(
            modelAt: modelDirectory.appendingPathComponent(file).path,
            options: SessionOptions(
                precision: precision, inputShapes: [input: shape], flexibleSizeMultiple: flexibleSizeMultiple))
        sessions[key] = session
        return session
    }

    /// The shared test photos (FACESOCIAL_TESTDATA, else ../shared/testdata).
    static var testData: URL {
        if let override = ProcessInfo.processInfo.environment["FACESOCIAL_TESTDATA"], !override.isEmpty {
            return URL(fileURLWithPath: override, isDirectory: true)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata", isDirectory: true)
    }
}
