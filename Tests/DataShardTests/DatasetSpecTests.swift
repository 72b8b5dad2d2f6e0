import DataShard
import RuntimeCore
import Testing

@Suite("Dataset specs")
struct DatasetSpecTests {
    @Test("shards are ceil(total / shard_size) contiguous ranges; only the last is shorter")
    func shardRanges() throws {
        let spec = try DatasetSpec(name: "imagenet", totalSamples: 1_281_167, shardSize: 10_000, shuffle: true, seed: 7)
        #expect(spec.shardCount == 129)
        #expect(spec.sampleRange(ofShard: 0) == 0..<10_000)
        #expect(spec.sampleRange(ofShard: 128) == 1_280_000..<1_281_167)
        let covered = (0..<spec.shardCount).reduce(Int64(0)) { $0 + Int64(spec.sampleRange(ofShard: $1).count) }
        #expect(covered == spec.totalSamples)
    }

    @Test("bad specs name the field and the rule")
    func validation() {
        let cases: [(String, Int64, Int64, String)] = [
            ("", 10, 1, "name must be 1-128 characters of [A-Za-z0-9._-] (got \"\")"),
            ("../etc", 10, 1, "name must be 1-128 characters of [A-Za-z0-9._-] (got \"../etc\")"),
            ("d", 0, 1, "total_samples must be between 1 and 2^40 (got 0)"),
            ("d", (1 << 40) + 1, 1, "total_samples must be between 1 and 2^40 (got 1099511627777)"),
            ("d", 10, 0, "shard_size must be between 1 and total_samples (10) (got 0)"),
            ("d", 10, 11, "shard_size must be between 1 and total_samples (10) (got 11)"),
        ]
        for (name, total, size, message) in cases {
            #expect(throws: CoreError(.invalidArgument, message)) {
                try DatasetSpec(name: name, totalSamples: total, shardSize: size, shuffle: false, seed: 0)
            }
        }
    }
}
