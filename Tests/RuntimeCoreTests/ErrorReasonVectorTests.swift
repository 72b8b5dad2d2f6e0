import Foundation
import RuntimeCore
import Testing

/// `testdata/error_reasons.json`: the reasons as the Python SDK and the docs know them.
struct ReasonVectors: Decodable {
    struct Row: Decodable {
        var reason: String
        var code: String
        var python: String
    }

    var reasons: [Row]
}

@Suite("Error reasons agree with the shared vectors and the docs")
struct ErrorReasonVectorTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func vectors() throws -> ReasonVectors {
        try JSONDecoder().decode(
            ReasonVectors.self, from: Data(contentsOf: root.appendingPathComponent("testdata/error_reasons.json")))
    }

    @Test("testdata/error_reasons.json lists every reason, in order, and the generic ones with their own code")
    func everyReason() throws {
        let rows = try Self.vectors().reasons
        #expect(rows.map(\.reason) == ErrorReason.allCases.map(\.rawValue))
        for code in ErrorCode.allCases {
            #expect(rows.first { $0.reason == ErrorReason(generic: code).rawValue }?.code == code.rawValue)
        }
    }

    @Test("docs/API.md documents every reason")
    func documented() throws {
        let api = try String(contentsOf: Self.root.appendingPathComponent("docs/API.md"), encoding: .utf8)
        for reason in ErrorReason.allCases {
            #expect(api.contains("`\(reason.rawValue)`"), "docs/API.md does not list \(reason.rawValue)")
        }
    }
}
