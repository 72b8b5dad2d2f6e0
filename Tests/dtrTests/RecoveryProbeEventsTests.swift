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
}
