import Foundation
import RuntimeCore
import Testing

/// `testdata/name_vectors.json`: the names and limits the coordinator checks, which the Python SDK checks before
/// sending (python/tests/test_shared_vectors.py reads the same file).
struct NameVectors: Decodable {
    struct Limits: Decodable {
        var maxMetrics: Int
        var maxMetadata: Int
        var maxMetadataValueBytes: Int
    }

    struct Row: Decodable, CustomTestStringConvertible {
        var value: String
        var name: Bool
        var taskId: Bool
        var metricName: Bool
        var testDescription: String { Validation.quoted(value) }
    }

    var limits: Limits
    var names: [Row]

    static func load() throws -> NameVectors {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("testdata/name_vectors.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(NameVectors.self, from: Data(contentsOf: url))
    }
}

@Suite("Validation agrees with the shared vectors")
struct ValidationVectorTests {
    @Test("names, task ids and metric names", arguments: try NameVectors.load().names)
    func name(_ row: NameVectors.Row) {
        #expect(((try? Validation.name(row.value)) != nil) == row.name)
        #expect(((try? TaskID(row.value, emptyMeansDefault: false)) != nil) == row.taskId)
        #expect(((try? Validation.metrics([row.value: 1])) != nil) == row.metricName)
        #expect(((try? Validation.metadata([row.value: ""])) != nil) == row.metricName, "metadata keys: same rule")
    }

    @Test("the limits: the limit passes, one more is refused")
    func limits() throws {
        let limits = try NameVectors.load().limits
        #expect(Validation.maxMetrics == limits.maxMetrics)
        let metrics = Dictionary(uniqueKeysWithValues: (0..<limits.maxMetrics).map { ("m\($0)", 1.0) })
        #expect(throws: Never.self) { try Validation.metrics(metrics) }
        #expect(throws: CoreError.self) { try Validation.metrics(metrics.merging(["one-more": 1]) { $1 }) }
        let metadata = Dictionary(uniqueKeysWithValues: (0..<limits.maxMetadata).map { ("k\($0)", "v") })
        #expect(throws: Never.self) { try Validation.metadata(metadata) }
        #expect(throws: CoreError.self) { try Validation.metadata(metadata.merging(["one-more": "v"]) { $1 }) }
        let longest = String(repeating: "x", count: limits.maxMetadataValueBytes)
        #expect(throws: Never.self) { try Validation.metadata(["k": longest]) }
        #expect(throws: CoreError.self) { try Validation.metadata(["k": longest + "x"]) }
    }
}
