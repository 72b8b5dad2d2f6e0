import Testing

@testable import dtr

@Suite("The swarm's reconnection after a restart, read from its sessions' and connections' times")
struct ReconnectionTests {
    let second: Int64 = 1_000_000_000
    let millisecond: Int64 = 1_000_000

    @Test("when it noticed and first tried, attempts before listening, the first and every connection up")
    func reconnection() throws {
        // Killed at 1 s; listening at 6 s. Two connections: what came before the kill does not count; three attempts
        // before listening, one after; the connections up 0.3 s and 0.8 s after listening.
        let times: [(attempted: [Int64], up: [Int64])] = [
            (attempted: [500, 4 * second, 6 * second + 200 * millisecond], up: [600, 6 * second + 300 * millisecond]),
            (attempted: [2 * second, 5 * second + 500 * millisecond], up: [6 * second + 800 * millisecond]),
        ]
        let breaks = [700, second + 100 * millisecond, second + 150 * millisecond]
        let seen = Reconnection(times, breaks: breaks, killed: second, listening: 6 * second)
        #expect(abs(try #require(seen.firstBreak) - 0.1) < 1e-9)
        #expect(abs(try #require(seen.firstAttempt) - 1.0) < 1e-9)
        #expect(seen.attempts == 4)
        #expect(seen.attemptsBeforeListening == 3)
        #expect(abs(try #require(seen.lastAttemptBeforeListening) - 0.5) < 1e-9)
        #expect(seen.firstUpAt == 6 * second + 300 * millisecond)
        #expect(abs(try #require(seen.firstUp) - 0.3) < 1e-9)
        #expect(abs(try #require(seen.allUp) - 0.8) < 1e-9)
        #expect(seen.ups == 2 && seen.madeAgain == 0)
        // Breaks after the kill: both before the first attempt (at 2 s).
        #expect(seen.breaksBeforeFirstAttempt == 2 && seen.breaksBeforeFirstUp == 2)
        // One of two connections up: not every one is.
        let half = Reconnection(
            [times[0], (attempted: times[1].attempted, up: [])], breaks: breaks, killed: second,
            listening: 6 * second)
        #expect(half.firstUp != nil && half.allUp == nil)
        // Nothing since the kill.
        let none = Reconnection(
            [(attempted: [500], up: [600]), (attempted: [], up: [])], breaks: [700], killed: 1_000, listening: 2_000)
        #expect(none.attempts == 0 && none.firstBreak == nil && none.firstAttempt == nil)
        #expect(none.lastAttemptBeforeListening == nil && none.firstUp == nil && none.allUp == nil)
        #expect(none.breaksBeforeFirstAttempt == 0 && none.ups == 0)
    }

    @Test("a connection up before the ready line was read is before listening; one made again is counted once")
    func early() throws {
        // Killed at 0; the ready line read at 100 ms. The first connection: attempted at 90 ms, up at 95 ms, made
        // again at 300 ms; the second: up at 150 ms.
        let seen = Reconnection(
            [
                (attempted: [90 * millisecond, 250 * millisecond], up: [95 * millisecond, 300 * millisecond]),
                (attempted: [140 * millisecond], up: [150 * millisecond]),
            ],
            breaks: [10 * millisecond, 20 * millisecond, 92 * millisecond, 200 * millisecond], killed: 0,
            listening: 100 * millisecond)
        #expect(seen.attemptsBeforeListening == 1)
        #expect(abs(try #require(seen.firstUp) + 0.005) < 1e-9)
        // Every connection was up at 150 ms: the first one made again later does not count as its coming back.
        #expect(abs(try #require(seen.allUp) - 0.05) < 1e-9)
        #expect(seen.ups == 3 && seen.madeAgain == 1)
        // Breaks before the first attempt (90 ms) and before the first connection up (95 ms).
        #expect(seen.breaksBeforeFirstAttempt == 2 && seen.breaksBeforeFirstUp == 3)
    }
}
