import Checkpoint
import Foundation
import RuntimeCore
import Testing

/// `testdata/retention_vectors.json`: which checkpoints a policy deletes, as the Python SDK's `expired_checkpoints`
/// decides too (python/tests/test_shared_vectors.py reads the same file).
struct RetentionVectors: Decodable {
    struct Policy: Decodable {
        var keepLast: Int
        var keepBest: Int
        var metric: String
        var mode: String
    }

    struct Committed: Decodable {
        var id: String
        /// A null metric is NaN (JSON has no NaN).
        var metrics: [String: Double?]
    }

    struct Case: Decodable, CustomTestStringConvertible {
        var name: String
        var policy: Policy
        var committed: [Committed]
        var expired: [String]
        var testDescription: String { name }
    }

    var cases: [Case]

    static func load() throws -> RetentionVectors {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("testdata/retention_vectors.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RetentionVectors.self, from: Data(contentsOf: url))
    }
}

@Suite("Retention agrees with the shared vectors")
struct RetentionPolicyVectorTests {
    @Test("every case of testdata/retention_vectors.json", arguments: try RetentionVectors.load().cases)
    func vector(_ example: RetentionVectors.Case) throws {
        let mode = try #require(RetentionPolicy.Mode(rawValue: example.policy.mode))
        let policy = RetentionPolicy(
            keepLast: example.policy.keepLast, keepBest: example.policy.keepBest, metric: example.policy.metric,
            mode: mode)
        let committed = try example.committed.map { row in
            RetentionPolicy.Candidate(
                id: try CheckpointID(parsing: row.id), metrics: row.metrics.mapValues { $0 ?? .nan })
        }
        let expired = policy.expired(committed)
        // The vectors list them in commit order; the coordinator returns the same ids in id order.
        #expect(expired.map(\.description).sorted() == example.expired.sorted())
        #expect(expired == expired.sorted())
    }

    @Test("keepLast 0 keeps every checkpoint, and the vectors say so")
    func keepLastZero() throws {
        let zero = try RetentionVectors.load().cases.filter { $0.policy.keepLast == 0 }
        #expect(!zero.isEmpty)
        #expect(zero.allSatisfy { $0.expired.isEmpty && !$0.committed.isEmpty })
    }
}
