import Swarm
import Testing

@Suite("Percentiles of the swarm's round trips")
struct SwarmPercentilesTests {
    @Test("quantiles, the largest sample and how many exceed a bound")
    func quantilesAndCounts() {
        // 1 ms to 10 ms, in no order.
        let trips = Percentiles(nanoseconds: [7, 2, 9, 1, 10, 4, 3, 8, 6, 5].map { $0 * 1_000_000 })
        #expect(trips.count == 10)
        #expect(trips.milliseconds(0.5) == 5)
        #expect(trips.milliseconds(0.99) == 10)
        #expect(trips.maxMilliseconds == 10)
        // Longer than the bound: a sample equal to it does not count.
        #expect(trips.count(over: 7) == 3)
        #expect(trips.count(over: 6.5) == 4)
        #expect(trips.count(over: 0) == 10)
        #expect(trips.count(over: 10) == 0)
    }

    @Test("no samples: zeros, and none over any bound")
    func empty() {
        let trips = Percentiles(nanoseconds: [])
        #expect(trips.count == 0)
        #expect(trips.milliseconds(0.5) == 0)
        #expect(trips.count(over: 0) == 0)
    }
}
