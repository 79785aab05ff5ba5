import Foundation
import Logging

/// One log record per line on stdout, whatever a request carries: `json` (production) is one JSON
/// object per line (time, level, logger, message, metadata with the request id among it), the form
/// log collectors parse without configuration; `text` (development) is time, level, label,
/// metadata as `key=value` (sorted), then the message, every value escaped first, so a request
/// value with a line break or a terminal escape cannot start a forged line or recolour the terminal.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable { case text, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: Format
    private let write: @Sendable (String) -> Void

    public init(
        label: String, level: Logger.Level, format: Format,
        write: @escaping @Sendable (String) -> Void = LogOutput.standardOutput
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        switch format {
        case .text:
            var line = "\(LogOutput.timestamp()) \(event.level.rawValue) \(LogEscaping.escaped(label)) :"
            for key in merged.keys.sorted() {
                line += " \(LogEscaping.escaped(key))=\(LogEscaping.escaped(Self.text(merged[key]!)))"
            }
            write(line + " \(LogEscaping.escaped(event.message.description))\n")
        case .json:
            var object: [String: Any] = [
                "time": LogOutput.timestamp(), "level": event.level.rawValue, "logger": label,
                "message": event.message.description,
            ]
            for (key, value) in merged { object[key] = Self.plain(value) }
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
                return
            }
            write(String(decoding: LogEscaping.escapedJSON(data), as: UTF8.self) + "\n")
        }
    }

    private static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let s): s.description
        case .array(let a): "[" + a.map(text).joined(separator: ", ") + "]"
        case .dictionary(let d): "[" + d.keys.sorted().map { "\($0): \(text(d[$0]!))" }.joined(separator: ", ") + "]"
        }
    }

    private static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): s
        case .stringConvertible(let s): s.description
        case .array(let a): a.map(plain)
        case .dictionary(let d): d.mapValues(plain)
        }
    }
}

/// How log text is made safe: every control character (C0, DEL, C1; CR, LF, NUL and ESC among
/// them), the Unicode line and paragraph separators and the backslash written as visible escapes.
public enum LogEscaping {
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            case _ where needsEscape(scalar): out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The backslash too (doubled), so the input cannot fake an escape.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
            || scalar == "\\"
    }

    /// JSON escapes C0 itself; DEL, C1 and the two separators are valid in JSON strings, so they
    /// are escaped in the encoded line (in UTF-8, C2 80–9F is U+0080–U+009F, E2 80 A8/A9 the separators).
    static func escapedJSON(_ data: Data) -> Data {
        var out = Data()
        out.reserveCapacity(data.count)
        var index = data.startIndex
        while index < data.endIndex {
            let byte = data[index]
            let next = data.index(after: index) < data.endIndex ? data[data.index(after: index)] : 0
            if byte == 0x7F {
                out.append(contentsOf: Array("\\u007f".utf8))
            } else if byte == 0xC2, (0x80...0x9F).contains(next) {
                out.append(contentsOf: Array(String(format: "\\u%04x", Int(next)).utf8))
                index = data.index(after: index)
            } else if byte == 0xE2, next == 0x80, data.index(index, offsetBy: 2) < data.endIndex,
                [0xA8, 0xA9].contains(data[data.index(index, offsetBy: 2)])
            {
                let last = data[data.index(index, offsetBy: 2)]
                out.append(contentsOf: Array((last == 0xA8 ? "\\u2028" : "\\u2029").utf8))
                index = data.index(index, offsetBy: 2)
            } else {
                out.append(byte)
            }
            index = data.index(after: index)
        }
        return out
    }
}

/// Where the handlers write, one whole line at a time.
public enum LogOutput {
    private static let lock = NSLock()

    public static let standardOutput: @Sendable (String) -> Void = { line in
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    static func timestamp() -> String {
        Date().formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
