import Foundation
import Testing

@testable import FaceSocialServer

/// The rules behind user and API-key administration and the gallery's change feed, as plain code:
/// no server, no database, milliseconds each.
@Suite struct AdministrationRulesTests {
    // MARK: - The last active admin

    struct LastAdminRow: Sendable, CustomTestStringConvertible {
        let wasActiveAdmin: Bool
        let isActiveAdmin: Bool
        let activeAdmins: Int
        let disabling: Bool
        let refusal: String?
        var testDescription: String {
            "was \(wasActiveAdmin) now \(isActiveAdmin) admins \(activeAdmins) disabling \(disabling)"
        }
    }

    static let lastAdminRows: [LastAdminRow] = [
        // The only active admin: neither disabled nor demoted.
        .init(wasActiveAdmin: true, isActiveAdmin: false, activeAdmins: 1, disabling: true, refusal: "is_active"),
        .init(wasActiveAdmin: true, isActiveAdmin: false, activeAdmins: 1, disabling: false, refusal: "role"),
        // Another active admin remains.
        .init(wasActiveAdmin: true, isActiveAdmin: false, activeAdmins: 2, disabling: true, refusal: nil),
        .init(wasActiveAdmin: true, isActiveAdmin: false, activeAdmins: 3, disabling: false, refusal: nil),
        // Still an active admin after the change (a new password, new collections).
        .init(wasActiveAdmin: true, isActiveAdmin: true, activeAdmins: 1, disabling: false, refusal: nil),
        // Not an active admin before: the rule does not apply.
        .init(wasActiveAdmin: false, isActiveAdmin: false, activeAdmins: 0, disabling: true, refusal: nil),
        .init(wasActiveAdmin: false, isActiveAdmin: true, activeAdmins: 0, disabling: false, refusal: nil),
    ]

    @Test(arguments: lastAdminRows) func lastActiveAdminIsKept(_ row: LastAdminRow) {
        #expect(
            Users.lastAdminRefusal(
                wasActiveAdmin: row.wasActiveAdmin, isActiveAdmin: row.isActiveAdmin,
                activeAdmins: row.activeAdmins, disabling: row.disabling) == row.refusal)
    }

    // MARK: - A user change

    func user(role: Role = .developer, active: Bool = true) -> User {
        let user = User(email: "a@example.com", passwordHash: "old", role: role, collections: ["c1"])
        user.isActive = active
        return user
    }

    @Test func aChangeNamesWhatChangedAndEndsTokensOnlyForRolePasswordOrDisabling() {
        let cases: [(Users.Change, [String], Bool)] = [
            (Users.Change(), [], false),
            (Users.Change(role: .developer), [], false),  // the role it has: no change
            (Users.Change(role: .operator), ["role"], true),
            (Users.Change(collections: ["c2"]), ["collections"], false),
            (Users.Change(isActive: true), [], false),
            (Users.Change(isActive: false), ["is_active"], true),
            (Users.Change(passwordHash: "new"), ["password"], true),
            (
                Users.Change(role: .user, collections: [], isActive: false, passwordHash: "new"),
                ["role", "collections", "is_active", "password"], true
            ),
        ]
        for (change, changed, endsTokens) in cases {
            let target = user()
            let before = target.tokenVersion
            #expect(change.apply(to: target) == changed)
            #expect((target.tokenVersion == before + 1) == endsTokens, "\(changed)")
            #expect(target.tokenVersion <= before + 1)
        }
        let target = user()
        _ = Users.Change(role: .admin, collections: ["x"], isActive: false, passwordHash: "h").apply(to: target)
        #expect(target.role == "admin" && target.collections == ["x"] && !target.isActive && target.passwordHash == "h")
    }

    @Test func rolesAreNamedOrRefusedWithTheList() throws {
        #expect(try Role.named("operator") == .operator)
        let error = #expect(throws: APIError.self) { try Role.named("root") }
        #expect(error?.details["field"] == "role")
        #expect(error?.message.contains("admin, operator, developer, user") == true)
    }

    // MARK: - API key scopes

    static func principal(_ permissions: Set<Permission>) -> Principal {
        Principal(kind: .user, id: "u", role: .developer, permissions: permissions, collections: .all, email: nil)
    }

    @Test func keyScopesAreKeyScopesTheIssuerHolds() throws {
        let developer = Self.principal(Role.developer.permissions)
        #expect(
            try APIKeys.scopes(["face:analyze", "collections:read"], issuer: developer) == [
                .faceAnalyze, .collectionsRead,
            ])
        #expect(try APIKeys.scopes(["face:analyze", "face:analyze"], issuer: developer) == [.faceAnalyze])
        // Not a key scope at all, or not a permission.
        for name in ["admin:users", "system:monitor", "everything", ""] {
            let error = #expect(throws: APIError.self) {
                try APIKeys.scopes([name], issuer: Self.principal(Set(Permission.allCases)))
            }
            #expect(error?.code == "VALIDATION_FAILED", "\(name)")
        }
        // Nobody hands out more than they hold.
        let reader = Self.principal([.faceAnalyze, .collectionsRead])
        let error = #expect(throws: APIError.self) { try APIKeys.scopes(["face:enroll"], issuer: reader) }
        #expect(error?.code == "FORBIDDEN")
        // An empty list.
        #expect(throws: APIError.self) { try APIKeys.scopes([], issuer: developer) }
    }

    // MARK: - The gallery's change feed

    @Test func changePayloadsRoundTripAndForeignOnesAreIgnored() {
        let id = UUID()
        let changes: [GalleryChange] = [
            .version(collectionID: id, version: 0), .version(collectionID: id, version: 9_000_000_000),
            .deleted(collectionID: id),
        ]
        for change in changes { #expect(GalleryChange(payload: change.payload) == change) }
        #expect(GalleryChange.version(collectionID: id, version: 7).payload == "\(id.uuidString.lowercased()):7")
        #expect(GalleryChange.deleted(collectionID: id).payload == "\(id.uuidString.lowercased()):deleted")
        let lower = id.uuidString.lowercased()
        for payload in [
            "", lower, "\(lower):", ":7", "\(lower):-1", "\(lower):seven", "\(lower):7:8", "not-a-uuid:7",
            "\(lower):DELETED",
        ] {
            #expect(GalleryChange(payload: payload) == nil, "\(payload)")
        }
    }

    // MARK: - Stored text

    @Test func namesAreCheckedBeforeTrimmingAndMetadataIsBounded() throws {
        #expect(try TextPolicy.checked("  Ann  ", field: "name") == "Ann")
        for bad in ["", "   ", "Ann\r\n", "Ann\u{85}", "A\u{0}nn", String(repeating: "a", count: 201)] {
            let error = #expect(throws: APIError.self) { try TextPolicy.checked(bad, field: "name") }
            #expect(error?.details["field"] == "name", "\(bad.debugDescription)")
        }
        #expect(try TextPolicy.metadataJSON(nil) == "{}")
        #expect(try TextPolicy.metadataJSON(["team": .string("blue")]) == #"{"team":"blue"}"#)
        #expect(throws: APIError.self) { try TextPolicy.metadataJSON(["k\u{1b}": .string("v")]) }
        #expect(throws: APIError.self) { try TextPolicy.metadataJSON(["k": .array([.string("\u{7f}")])]) }
        #expect(throws: APIError.self) {
            try TextPolicy.metadataJSON(["big": .string(String(repeating: "x", count: 17 * 1024))])
        }
    }
}
