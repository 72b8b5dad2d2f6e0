import Checkpoint
import Foundation
import RuntimeCore
import Testing

/// `testdata/object_key_vectors.json`: which object keys a store accepts, where a checkpoint's objects go and which
/// checkpoint ids parse, as the Python SDK decides too (python/tests/test_shared_vectors.py reads the same file).
struct ObjectKeyVectors: Decodable {
    struct Key: Decodable, CustomTestStringConvertible {
        var key: String
        var valid: Bool
        var testDescription: String { "\(Validation.quoted(key)) \(valid ? "valid" : "invalid")" }
    }

    struct Layout: Decodable, CustomTestStringConvertible {
        var task: String
        var step: Int64
        var attempt: Int
        var rank: Int
        var checkpointId: String
        var partKey: String
        var manifestKey: String
        var testDescription: String { checkpointId }
    }

    struct Identifier: Decodable, CustomTestStringConvertible {
        var text: String
        var valid: Bool
        var testDescription: String { "\(Validation.quoted(text)) \(valid ? "valid" : "invalid")" }
    }

    var keys: [Key]
    var layout: [Layout]
    var checkpointIds: [Identifier]

    static func load() throws -> ObjectKeyVectors {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("testdata/object_key_vectors.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(ObjectKeyVectors.self, from: Data(contentsOf: url))
    }
}

@Suite("Object keys agree with the shared vectors")
struct ObjectKeyVectorTests {
    @Test("which keys a store accepts", arguments: try ObjectKeyVectors.load().keys)
    func key(_ row: ObjectKeyVectors.Key) {
        #expect(((try? ObjectKey(row.key)) != nil) == row.valid)
    }

    @Test("where a checkpoint's parts and manifest go", arguments: try ObjectKeyVectors.load().layout)
    func layout(_ row: ObjectKeyVectors.Layout) throws {
        let id = CheckpointID(task: try TaskID(row.task), step: row.step, attempt: row.attempt)
        #expect(id.description == row.checkpointId)
        #expect(id.partKey(rank: row.rank).rawValue == row.partKey)
        #expect(id.manifestKey.rawValue == row.manifestKey)
        #expect(try CheckpointID(parsing: row.checkpointId) == id)
    }

    @Test("which checkpoint ids parse", arguments: try ObjectKeyVectors.load().checkpointIds)
    func identifier(_ row: ObjectKeyVectors.Identifier) {
        let parsed = try? CheckpointID(parsing: row.text)
        #expect((parsed != nil) == row.valid)
        if let parsed { #expect(parsed.description == row.text) }
    }
}
