import DataShard
import Foundation
import Testing

/// The shared vectors: what `EpochShuffle` must produce, checked here and by `python/tests/test_shuffle.py`.
struct ShuffleVectors: Codable {
    struct Case: Codable {
        var name: String
        var seed: UInt64
        var epoch: Int64
        var totalSamples: Int64
        var shardSize: Int64
        var shuffle: Bool
        var shardOrder: [Int64]
        /// Sample orders of the first, second and last shard of the epoch's order, by shard id.
        var samples: [String: [Int64]]

        enum CodingKeys: String, CodingKey {
            case name, seed, epoch, shuffle, samples
            case totalSamples = "total_samples"
            case shardSize = "shard_size"
            case shardOrder = "shard_order"
        }
    }

    var mix: [String: String]
    var cases: [Case]
}

@Suite("Epoch shuffle")
struct EpochShuffleTests {
    static let vectorsURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("testdata/shuffle_vectors.json")

    static let specs: [(String, UInt64, Int64, Int64, Int64, Bool)] = [
        ("small", 42, 0, 100, 10, true),
        ("small-next-epoch", 42, 1, 100, 10, true),
        ("uneven-last-shard", 7, 3, 1003, 64, true),
        ("max-seed", UInt64.max, 9, 5000, 250, true),
        ("zero-seed", 0, 0, 37, 5, true),
        ("no-shuffle", 42, 5, 100, 10, false),
        ("one-shard", 1, 2, 9, 9, true),
    ]

    static func compute() throws -> ShuffleVectors {
        let mixes = [0, 1, 0xDEAD_BEEF, UInt64.max].map { (String($0), String(EpochShuffle.mix($0))) }
        let cases = try specs.map { name, seed, epoch, total, size, shuffle in
            let spec = try DatasetSpec(name: name, totalSamples: total, shardSize: size, shuffle: shuffle, seed: seed)
            let order = EpochShuffle.shardOrder(of: spec, epoch: epoch)
            let picked = Set([order[0], order[min(1, order.count - 1)], order[order.count - 1]])
            return ShuffleVectors.Case(
                name: name, seed: seed, epoch: epoch, totalSamples: total, shardSize: size, shuffle: shuffle,
                shardOrder: order,
                samples: Dictionary(
                    uniqueKeysWithValues: picked.map {
                        (String($0), EpochShuffle.sampleOrder(of: spec, epoch: epoch, shard: $0))
                    }))
        }
        return ShuffleVectors(mix: Dictionary(uniqueKeysWithValues: mixes), cases: cases)
    }

    @Test("the committed vectors are what this implementation produces (regenerate: DTR_WRITE_VECTORS=1)")
    func vectors() throws {
        let computed = try Self.compute()
        if ProcessInfo.processInfo.environment["DTR_WRITE_VECTORS"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(computed).write(to: Self.vectorsURL)
        }
        let committed = try JSONDecoder().decode(ShuffleVectors.self, from: Data(contentsOf: Self.vectorsURL))
        #expect(committed.mix == computed.mix)
        #expect(committed.cases.map(\.name) == computed.cases.map(\.name))
        for (mine, theirs) in zip(computed.cases, committed.cases) {
            #expect(mine.shardOrder == theirs.shardOrder, "\(mine.name)")
            #expect(mine.samples == theirs.samples, "\(mine.name)")
        }
    }

    @Test("orders are permutations; epochs differ; no shuffle is the identity")
    func permutations() throws {
        let spec = try DatasetSpec(name: "d", totalSamples: 10_000, shardSize: 100, shuffle: true, seed: 3)
        let first = EpochShuffle.shardOrder(of: spec, epoch: 0)
        let second = EpochShuffle.shardOrder(of: spec, epoch: 1)
        #expect(first.sorted() == Array(0..<100))
        #expect(first != second && first != Array(0..<100))
        #expect(first == EpochShuffle.shardOrder(of: spec, epoch: 0), "deterministic")
        let samples = EpochShuffle.sampleOrder(of: spec, epoch: 0, shard: 17)
        #expect(samples.sorted() == Array(1700..<1800) && samples != Array(1700..<1800))
        #expect(samples != EpochShuffle.sampleOrder(of: spec, epoch: 1, shard: 17))

        let plain = try DatasetSpec(name: "d", totalSamples: 1000, shardSize: 100, shuffle: false, seed: 3)
        #expect(EpochShuffle.shardOrder(of: plain, epoch: 4) == Array(0..<10))
        #expect(EpochShuffle.sampleOrder(of: plain, epoch: 4, shard: 2) == Array(200..<300))
    }

    @Test("every position is equally likely (chi-square over 20,000 shuffles of 8 elements)")
    func uniformity() {
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 8), count: 8)
        let trials = 20_000
        for trial in 0..<trials {
            var order = Array(0..<8)
            EpochShuffle.shuffle(&order, seed: EpochShuffle.mix(UInt64(trial)))
            for (position, element) in order.enumerated() { counts[element][position] += 1 }
        }
        let expected = Double(trials) / 8
        let chiSquare = counts.joined().reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
        // 64 cells, 49 degrees of freedom: the 99.9th percentile is 85.4.
        #expect(chiSquare < 85.4, "chi-square \(chiSquare)")
    }
}
