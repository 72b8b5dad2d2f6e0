import Testing

@testable import dtr

@Suite("The recovery probe's fixed schedule")
struct RecoveryProbeScheduleTests {
    @Test("10 ms after the last call due, or at once (no burst) if the probe fell behind")
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
