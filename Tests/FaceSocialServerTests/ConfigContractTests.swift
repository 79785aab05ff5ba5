import Foundation
import Testing

@testable import FaceSocialServer

/// `ConfigVariable.all` is what `serve --help` prints and what the README's table must list: these
/// tests fail when the sources read a variable that is not declared there, when a declared one is
/// read nowhere, or when the README leaves one out.
@Suite struct ConfigContractTests {
    /// Every environment variable the sources read, by the readers they use.
    static func variablesRead() throws -> Set<String> {
        let pattern = try Regex(
            #"(?:integer|number|value|flag)\(\s*"((?:FACESOCIAL|DATABASE|JWT|REDIS)_[A-Z0-9_]+)"|(?:env|environment)\["((?:FACESOCIAL|DATABASE|JWT|REDIS)_[A-Z0-9_]+)"\]"#
        )
        var names = Set<String>()
        let sources = packageRoot.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                for index in 1..<match.output.count {
                    if let name = match.output[index].substring { names.insert(String(name)) }
                }
            }
        }
        return names
    }

    @Test func everyVariableReadIsDeclaredAndEveryDeclaredOneIsRead() throws {
        let declared = Set(ConfigVariable.all.map(\.name))
        #expect(declared.count == ConfigVariable.all.count, "a variable is declared twice")
        let read = try Self.variablesRead()
        #expect(read.count > 50, "the scan found too few reads: \(read.count)")
        #expect(
            read.subtracting(declared).isEmpty, "read but not in serve --help: \(read.subtracting(declared).sorted())")
        // CUDA_VISIBLE_DEVICES is read by the CUDA driver, not by our code.
        let unread = declared.subtracting(read).subtracting(["CUDA_VISIBLE_DEVICES"])
        #expect(unread.isEmpty, "declared but never read: \(unread.sorted())")
    }

    @Test func theREADMEListsEveryVariable() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let missing = ConfigVariable.all.map(\.name).filter { !readme.contains("`\($0)`") }
        #expect(missing.isEmpty, "missing from the README's configuration table: \(missing)")
    }
}
