import Foundation

/// The shared photo folder: `FACESOCIAL_TESTDATA` if set, else `../shared/testdata` next to the
/// package root (found from this file's path, so it works from any working directory).
func testDataDirectory() -> URL {
    if let override = ProcessInfo.processInfo.environment["FACESOCIAL_TESTDATA"], !override.isEmpty {
        return URL(fileURLWithPath: override, isDirectory: true)
    }
    let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // FaceKitTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
    return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata", isDirectory: true)
}

func testImage(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: testDataDirectory().appendingPathComponent(name)))
}
