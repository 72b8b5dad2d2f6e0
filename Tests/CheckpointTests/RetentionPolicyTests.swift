import Checkpoint
import RuntimeCore
import Testing

@Suite("Retention selection")
struct RetentionPolicyTests {
    private static func candidates(_ losses: [Double?]) -> [RetentionPolicy.Candidate] {
        losses.enumerated().map { index, loss in
            RetentionPolicy.Candidate(
                id: CheckpointID(task: .default, step: Int64(index + 1), attempt: 1),
                metrics: loss.map { ["loss": $0] } ?? [:])
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var policy: RetentionPolicy
        var losses: [Double?]
        var expiredSteps: [Int64]
        var testDescription: String {
            "last \(policy.keepLast) best \(policy.keepBest) \(policy.mode) of \(losses) -> delete \(expiredSteps)"
        }
    }

    @Test(
        "keeps the last N plus the best K, never the latest",
        arguments: [
            Case(policy: .default, losses: Array(repeating: nil, count: 7), expiredSteps: [1, 2]),
            Case(policy: .init(keepLast: 0, keepBest: 0, metric: "", mode: .min), losses: [1, 2, 3], expiredSteps: []),
            Case(
                policy: .init(keepLast: 1, keepBest: 0, metric: "", mode: .min), losses: [1, 2, 3],
                expiredSteps: [1, 2]),
            Case(
                policy: .init(keepLast: 1, keepBest: 1, metric: "loss", mode: .min), losses: [0.3, 0.1, 0.2, 0.4],
                expiredSteps: [1, 3]),
            Case(
                policy: .init(keepLast: 1, keepBest: 2, metric: "loss", mode: .max), losses: [0.3, 0.1, 0.2, 0.4],
                expiredSteps: [2, 3]),
            Case(
                policy: .init(keepLast: 1, keepBest: 1, metric: "loss", mode: .min), losses: [nil, .nan, 0.5, nil],
                expiredSteps: [1, 2]),
            Case(
                policy: .init(keepLast: 1, keepBest: 1, metric: "loss", mode: .min), losses: [0.2, 0.2, 0.9],
                expiredSteps: [1]),
            Case(
                policy: .init(keepLast: 1, keepBest: 1, metric: "acc", mode: .min), losses: [0.1, 0.2],
                expiredSteps: [1]),
        ])
    func selection(_ example: Case) {
        let expired = example.policy.expired(Self.candidates(example.losses))
        #expect(expired.map(\.step) == example.expiredSteps)
        if let latest = example.losses.indices.last { #expect(!expired.map(\.step).contains(Int64(latest + 1))) }
    }
}
