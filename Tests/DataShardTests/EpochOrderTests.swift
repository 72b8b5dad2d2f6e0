import DataShard
import Testing

@Suite("Epoch order")
struct EpochOrderTests {
    @Test(
        "a bijection between positions and shards for every size, computed both ways",
        arguments: [1, 2, 3, 4, 5, 17, 64, 65, 1_000, 4_097])
    func bijection(count: Int64) {
        let order = EpochOrder(shardCount: count, shuffle: true, seed: 99)
        let shards = order.shards
        #expect(shards.sorted() == Array(0..<count))
        #expect((0..<count).allSatisfy { order.position(of: shards[Int($0)]) == $0 })
        if count >= 64 {
            #expect(shards != Array(0..<count), "shuffled")
            let other = EpochOrder(shardCount: count, shuffle: true, seed: 100).shards
            #expect(other != shards, "another seed, another order")
        }
        #expect(EpochOrder(shardCount: count, shuffle: false, seed: 99).shards == Array(0..<count))
    }

    @Test("positions spread: no shard keeps to its end of the order (mean position of the first tenth near the middle)")
    func spread() {
        let count: Int64 = 100_000
        let order = EpochOrder(shardCount: count, shuffle: true, seed: 5)
        let firstTenth = (0..<count / 10).map { Double(order.position(of: $0)) }
        let mean = firstTenth.reduce(0, +) / Double(firstTenth.count)
        #expect(abs(mean - Double(count) / 2) < Double(count) * 0.01, "mean \(mean)")
    }
}
