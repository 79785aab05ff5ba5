import Foundation

/// Settings read from an environment: a blank value counts as unset, and a value that does not
/// parse or is out of its range is a `ConfigError.invalid` naming the variable. Every
/// `fromEnvironment` reads through one of these.
struct EnvironmentReader: Sendable {
    let env: [String: String]

    init(_ env: [String: String]) { self.env = env }

    func value(_ name: String) -> String? {
        guard let raw = env[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
        return raw
    }

    func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let raw = value(name) else { return fallback }
        guard let number = Int(raw), range.contains(number) else {
            throw ConfigError.invalid(variable: name, reason: "expected an integer in \(range), got \"\(raw)\"")
        }
        return number
    }

    func number(_ name: String, _ fallback: Float, _ range: ClosedRange<Float>) throws -> Float {
        guard let raw = value(name) else { return fallback }
        guard let number = Float(raw), range.contains(number) else {
            throw ConfigError.invalid(variable: name, reason: "expected a number in \(range), got \"\(raw)\"")
        }
        return number
    }

    func flag(_ name: String, _ fallback: Bool) throws -> Bool {
        guard let raw = value(name)?.lowercased() else { return fallback }
        switch raw {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigError.invalid(variable: name, reason: "expected true or false, got \"\(raw)\"")
        }
    }
}
