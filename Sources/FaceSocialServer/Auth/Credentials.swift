import Foundation

/// Sign-in names: one spelling per address, so look-alikes cannot become separate accounts.
enum EmailAddress {
    /// The form stored and looked up: NFKC (full-width and other compatibility forms fold to
    /// their plain letters) and lowercase. Sign-in uses it too, so every spelling finds one row.
    static func canonical(_ raw: String) -> String {
        raw.precomposedStringWithCompatibilityMapping.lowercased()
    }

    /// The canonical form of a new account's email, or a 400 naming the problem: invisible
    /// characters (zero-width spaces, joiners, bidi marks), controls, or letters of more than one
    /// script in one part (`аdmin` with a Cyrillic а), the usual shape of a look-alike.
    static func validated(_ raw: String) throws -> String {
        let email = canonical(raw)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...64).contains(parts[0].count), (1...189).contains(parts[1].count),
            !email.contains(where: \.isWhitespace)
        else { throw APIError.validation("invalid email", field: "email") }
        if email.unicodeScalars.contains(where: {
            [.format, .control, .unassigned].contains($0.properties.generalCategory)
        }) {
            throw APIError.validation("the email holds invisible or control characters", field: "email")
        }
        let labels = [parts[0]] + parts[1].split(separator: ".", omittingEmptySubsequences: false)
        for label in labels where !Script.isSingleScript(label) {
            throw APIError.validation("the email mixes letters of different scripts (\(label))", field: "email")
        }
        return email
    }
}

/// Which writing system a letter belongs to, by Unicode block: enough to tell a label written in
/// one script from one that mixes them (Unicode's UTS #39 "highly restrictive" level: one
/// script, or Latin with the scripts Japanese, Chinese and Korean are written in together).
enum Script: Hashable {
    case latin, greek, cyrillic, armenian, hebrew, arabic, devanagari, bengali, tamil, thai, georgian
    case hangul, hiragana, katakana, bopomofo, han
    case other(UInt32)

    static func of(_ scalar: Unicode.Scalar) -> Script? {
        guard scalar.properties.isAlphabetic else { return nil }  // digits, marks, punctuation: any
        switch scalar.value {
        case 0x41...0x24F, 0x1E00...0x1EFF, 0x2C60...0x2C7F, 0xA720...0xA7FF: return .latin
        case 0x370...0x3FF, 0x1F00...0x1FFF: return .greek
        case 0x400...0x52F, 0x2DE0...0x2DFF, 0xA640...0xA69F, 0x1C80...0x1C8F: return .cyrillic
        case 0x530...0x58F: return .armenian
        case 0x590...0x5FF: return .hebrew
        case 0x600...0x6FF, 0x750...0x77F, 0x8A0...0x8FF: return .arabic
        case 0x900...0x97F: return .devanagari
        case 0x980...0x9FF: return .bengali
        case 0xB80...0xBFF: return .tamil
        case 0xE00...0xE7F: return .thai
        case 0x10A0...0x10FF, 0x2D00...0x2D2F: return .georgian
        case 0x1100...0x11FF, 0x3130...0x318F, 0xAC00...0xD7AF: return .hangul
        case 0x3040...0x309F: return .hiragana
        case 0x30A0...0x30FF, 0x31F0...0x31FF: return .katakana
        case 0x3100...0x312F, 0x31A0...0x31BF: return .bopomofo
        case 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xF900...0xFAFF, 0x20000...0x3FFFF: return .han
        default: return .other(scalar.value >> 7)  // unlisted blocks: each its own script
        }
    }

    private static let mixes: [Set<Script>] = [
        [.latin, .han, .hiragana, .katakana], [.latin, .han, .bopomofo], [.latin, .han, .hangul],
    ]

    static func isSingleScript(_ text: Substring) -> Bool {
        let scripts = Set(text.unicodeScalars.compactMap(of))
        return scripts.count <= 1 || mixes.contains { scripts.isSubset(of: $0) }
    }
}

/// What a new password must be (every place that sets one: `POST /v1/users`, `PATCH /v1/users`,
/// `facesocial users create`, the first admin from the environment).
enum PasswordPolicy {
    static let lengths = 12...1024

    /// Keyboard rows and counting: a password that is a stretch of one of them, forwards or
    /// backwards, wrapping round (`123456789012`), is refused.
    private static let runs = [
        "1234567890", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertyuiopasdfghjklzxcvbnm",
    ]

    /// Nil when `password` may be used by the account `email`, else why not.
    static func problem(_ password: String, email: String?) -> String? {
        guard lengths.contains(password.count) else { return "password must have 12 to 1024 characters" }
        if password.allSatisfy(\.isWhitespace) { return "password must not be only spaces" }
        let folded = EmailAddress.canonical(password).trimmingCharacters(in: .whitespaces)
        if Set(folded).count < 4 { return "password must use at least 4 different characters" }
        if let email {
            let address = EmailAddress.canonical(email)
            let local = address.split(separator: "@").first.map(String.init) ?? address
            if folded == address || folded == local { return "password must not be the email" }
        }
        if CommonPasswords.list.contains(Substring(folded)) { return "password is one of the most common passwords" }
        for run in runs {
            let line = String(repeating: run, count: 1 + 1024 / run.count + 1)
            if line.contains(folded) || String(line.reversed()).contains(folded) {
                return "password is a run of consecutive keys or characters"
            }
        }
        return nil
    }

    static func check(_ password: String, email: String?) throws {
        if let problem = problem(password, email: email) { throw APIError.validation(problem, field: "password") }
    }
}
