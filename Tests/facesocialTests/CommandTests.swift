import Foundation
import Testing

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Runs the built `facesocial` binary and returns its exit code and output.
func facesocial(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = packageRoot.appendingPathComponent(".build/debug/facesocial")
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.currentDirectoryURL = packageRoot
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

@Suite("facesocial command line")
struct CommandTests {
    @Test func serveHelpListsEveryVariable() throws {
        let (status, output) = try facesocial(["serve", "--help"])
        #expect(status == 0)
        for name in [
            "FACESOCIAL_PROFILE", "FACESOCIAL_PORT", "DATABASE_URL", "JWT_SECRET_KEY", "FACESOCIAL_MODEL_DIR",
            "FACESOCIAL_MAX_IMAGE_SIDE",
        ] {
            #expect(output.contains(name), "\(name) missing from serve --help")
        }
    }

    @Test func modelsVerifyFailsOnOneChangedByte() throws {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("facesocial-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temp) }
        let installed = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["FACESOCIAL_MODEL_DIR"]
                ?? packageRoot.appendingPathComponent("var/models").path)
        // A copy of the installed models passes, then one flipped byte fails.
        let (pulled, pullOutput) = try facesocial([
            "models", "pull", "--model-dir", temp.path, "--from", installed.path,
        ])
        #expect(pulled == 0, "\(pullOutput)")
        let (ok, okOutput) = try facesocial(["models", "verify", "--model-dir", temp.path])
        #expect(ok == 0, "\(okOutput)")
        let file = temp.appendingPathComponent("attributes/gender_v1.onnx")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count / 3] ^= 0x20
        try bytes.write(to: file)
        let (bad, badOutput) = try facesocial(["models", "verify", "--model-dir", temp.path])
        #expect(bad != 0)
        #expect(badOutput.contains("gender: SHA-256 mismatch"))
        let (listed, listOutput) = try facesocial(["models", "list", "--model-dir", temp.path])
        #expect(listed == 0)
        #expect(listOutput.contains("sface") && listOutput.contains("critical"))
    }

    @Test func productionRefusesToStartWithDefaultSecrets() throws {
        let (status, output) = try facesocial(
            ["serve", "--port", "0"], environment: ["FACESOCIAL_PROFILE": "production"])
        #expect(status != 0)
        #expect(output.contains("JWT_SECRET_KEY"))
    }
}
