import Foundation

/// What stored names and metadata strings may hold: no control characters (C0, DEL, C1: NUL,
/// escape sequences, line breaks), which would corrupt logs, terminals and CSV exports that show
/// them. Tabs and line breaks are refused too in names (one line); free text such as a
/// collection's description may keep them.
enum TextPolicy {
    static func refuseControlCharacters(_ text: String, field: String, allowingLineBreaks: Bool = false) throws {
        let allowed: Set<Unicode.Scalar> = allowingLineBreaks ? ["\n", "\r", "\t"] : []
        guard
            let bad = text.unicodeScalars.first(where: {
                $0.properties.generalCategory == .control && !allowed.contains($0)
            })
        else { return }
        throw APIError.validation(
            "\(field) must not contain control characters (found U+\(String(format: "%04X", bad.value)))",
            field: field)
    }
}
