import Testing

@testable import dtr

@Suite("The recovery probe's events, as the benchmark reads them")
struct RecoveryProbeEventsTests {
    @Test("every kind of line, a call still in flight, and a partial last line left out")
    func parsing() {
        let text = """
            started 100
            health 200
            sent 300
            rpc 300 350
            sent 400
            sent 500
            failed 500 560 resourceExhausted
            sent 600
            nonsense 1 2
            rpc 700
            sent 7
            """
        let events = RecoveryProbe.Events(parsing: text)
        #expect(events.started == 100)
        #expect(events.health == 200)
        // The last line has no newline yet: `sent 7` is not read.
        #expect(events.sent == [300, 400, 500, 600])
        #expect(events.answered.map(\.sent) == [300] && events.answered.map(\.answered) == [350])
        #expect(events.failed.map(\.code) == ["resourceExhausted"] && events.failed.map(\.at) == [560])
        // 400 and 600 are neither answered nor failed.
        #expect(events.unfinished(sentBy: 450) == 1)
        #expect(events.unfinished(sentBy: 1_000) == 2)
        #expect(events.unfinished(sentBy: 350) == 0)
    }

    @Test("the calls in flight during a window: answered at or after its start, sent at or before its end")
    func inFlight() {
        let events = RecoveryProbe.Events(parsing: "rpc 10 20\nrpc 30 40\nrpc 50 90\nrpc 100 110\n")
        #expect(events.answered(inFlightDuring: [(start: 35, end: 60)]).map(\.sent) == [30, 50])
        #expect(events.answered(inFlightDuring: [(start: 20, end: 30)]).map(\.sent) == [10, 30])
        // Two windows: a call in both counts once.
        #expect(events.answered(inFlightDuring: [(60, 70), (80, 105)]).map(\.sent) == [50, 100])
        #expect(events.answered(inFlightDuring: [(111, 200)]).isEmpty)
    }

    @Test("the fixed schedule: 10 ms after the last call due, or at once (no burst) if the probe fell behind")
    func schedule() {
        let start = ContinuousClock.now
        // On time: the next call is due 10 ms after the last one, however early it is asked.
        #expect(RecoveryProbe.nextSend(after: start, now: start + .milliseconds(3)) == start + .milliseconds(10))
        #expect(RecoveryProbe.nextSend(after: start, now: start) == start + .milliseconds(10))
        // Behind by 35 ms (a stall): at once, and the schedule goes on from there instead of catching up.
        let late = start + .milliseconds(45)
        let next = RecoveryProbe.nextSend(after: start, now: late)
        #expect(next == late)
        #expect(RecoveryProbe.nextSend(after: next, now: late + .milliseconds(1)) == late + .milliseconds(10))
        #expect(
            RecoveryProbe.nextSend(after: start, now: start, every: .milliseconds(2)) == start + .milliseconds(2))
    }
}

@Suite("The swarm's reconnection after a restart, read from its sessions' and connections' times")
struct ReconnectionTests {
    @Test("when it noticed and first tried, attempts before listening, the first and every connection up")
    func reconnection() throws {
        // Killed at 1 s; listening at 6 s. Two connections: what came before the kill does not count; three attempts
        // before listening, one after (up 0.3 s and 0.8 s after listening).
        let second: Int64 = 1_000_000_000
        let times: (attempted: [Int64], up: [Int64]) = (
            attempted: [500, 4 * second, 2 * second, 5 * second + 500_000_000, 6 * second + 200_000_000],
            up: [600, 6 * second + 300_000_000, 6 * second + 800_000_000]
        )
        let breaks = [700, second + 100_000_000, second + 150_000_000]
        let seen = Reconnection(times, breaks: breaks, connections: 2, killed: second, listening: 6 * second)
        #expect(abs(try #require(seen.firstBreak) - 0.1) < 1e-9)
        #expect(abs(try #require(seen.firstAttempt) - 1.0) < 1e-9)
        #expect(seen.attempts == 4)
        #expect(seen.attemptsBeforeListening == 3)
        #expect(abs(try #require(seen.lastAttemptBeforeListening) - 0.5) < 1e-9)
        #expect(seen.firstUpAt == 6 * second + 300_000_000)
        #expect(abs(try #require(seen.firstUp) - 0.3) < 1e-9)
        #expect(abs(try #require(seen.allUp) - 0.8) < 1e-9)
        // One of two connections up: not every one is.
        let half = Reconnection(
            (attempted: times.attempted, up: Array(times.up.prefix(2))), breaks: breaks, connections: 2,
            killed: second, listening: 6 * second)
        #expect(half.firstUp != nil && half.allUp == nil)
        // Nothing since the kill.
        let none = Reconnection(
            (attempted: [500], up: [600]), breaks: [700], connections: 2, killed: 1_000, listening: 2_000)
        #expect(none.attempts == 0 && none.firstBreak == nil && none.firstAttempt == nil)
        #expect(none.lastAttemptBeforeListening == nil && none.firstUp == nil && none.allUp == nil)
    }
}
