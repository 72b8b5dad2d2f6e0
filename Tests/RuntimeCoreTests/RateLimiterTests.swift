import RuntimeCore
import Testing

@Suite("Rate limiting")
struct RateLimiterTests {
    @Test("a bucket allows its burst, then one request per 1/rate, and says how long to wait")
    func bucket() {
        var bucket = TokenBucket(rate: 10, burst: 3, now: .zero)
        #expect((0..<3).map { _ in bucket.take(now: .zero).allowed } == [true, true, true])
        let refused = bucket.take(now: .zero)
        #expect(!refused.allowed && refused.retryAfter == .milliseconds(100))
        #expect(!bucket.take(now: .milliseconds(50)).allowed)
        #expect(bucket.take(now: .milliseconds(100)).allowed)
        #expect(!bucket.isFull(now: .milliseconds(100)) && bucket.isFull(now: .seconds(10)))
        #expect((0..<4).map { _ in bucket.take(now: .seconds(10)).allowed } == [true, true, true, false])
    }

    @Test("clients have their own buckets; a full table forgets idle clients, then shares an overflow bucket")
    func clients() {
        var limiter = RateLimiter(rate: 1, burst: 2, maxClients: 2)
        #expect(limiter.admit("a", now: .zero) == nil && limiter.admit("a", now: .zero) == nil)
        #expect(limiter.admit("a", now: .zero) == .seconds(1), "a's burst is spent")
        #expect(limiter.admit("b", now: .zero) == nil, "b has its own")
        #expect(limiter.admit("c", now: .zero) == nil && limiter.admit("d", now: .zero) == nil)
        #expect(limiter.admit("e", now: .zero) != nil, "c, d and e share the overflow bucket while a and b are busy")
        #expect(limiter.admit("c", now: .seconds(5)) == nil, "later, idle a and b are forgotten")
        #expect(limiter.admit("a", now: .seconds(5)) == nil)
    }
}
