import Checkpoint
import RuntimeCore
import Testing

@Suite("Object keys cannot escape the store root")
struct ObjectKeyTests {
    @Test(
        "traversal, absolute paths, NUL, backslashes and encodings are rejected",
        arguments: [
            "", "/etc/passwd", "../x", "a/../../b", "a/./b", "a//b", "a/", "a\u{0}b", "a\\b", "%2e%2e/x", "a/%2E%2E",
            "~root", "a b", "é", String(repeating: "k", count: 513),
        ])
    func rejected(raw: String) {
        let error = #expect(throws: CoreError.self) { try ObjectKey(raw) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("object_key must be 1-512 bytes of /-separated") == true)
    }

    @Test("ordinary keys are accepted and split into segments")
    func accepted() throws {
        let key = try ObjectKey(segments: ["default", "step-000001000", "rank-00003.part"])
        #expect(key.rawValue == "default/step-000001000/rank-00003.part")
        #expect(key.segments == ["default", "step-000001000", "rank-00003.part"])
        #expect(try ObjectKey("..a/b..").rawValue == "..a/b..", "dots inside a segment are fine")
    }
}
