import Swarm
import Testing

/// The swarm's reconnection backoff is the Python SDK's (`dtruntime.worker._Backoff`).
@Suite("Swarm backoff")
struct SwarmBackoffTests {
    @Test("waits from 50 ms, doubling up to a second")
    func doubles() {
        var backoff = Backoff()
        let waits = (0..<8).map { _ in backoff.next(jitter: 1) }
        #expect(waits == [50, 100, 200, 400, 800, 1000, 1000, 1000].map { Duration.milliseconds($0) })
    }

    @Test("the jitter scales the wait, not the next one")
    func jitter() {
        var backoff = Backoff()
        #expect(backoff.next(jitter: 0.8) == .milliseconds(40))
        #expect(backoff.next(jitter: 1.2) == .milliseconds(120))
        #expect(backoff.next(jitter: 1) == .milliseconds(200))
    }

    @Test("random waits stay within ±20 % of the schedule")
    func randomJitter() {
        var backoff = Backoff()
        for base in [50, 100, 200, 400, 800, 1000, 1000] {
            let wait = backoff.next()
            #expect(wait >= .milliseconds(base) * 0.8 && wait <= .milliseconds(base) * 1.2, "\(wait) for \(base) ms")
        }
    }

    @Test("starts over from 50 ms after a reset")
    func reset() {
        var backoff = Backoff()
        for _ in 0..<6 { _ = backoff.next(jitter: 1) }
        backoff.reset()
        #expect(backoff.next(jitter: 1) == .milliseconds(50))
        #expect(backoff.next(jitter: 1) == .milliseconds(100))
    }
}
