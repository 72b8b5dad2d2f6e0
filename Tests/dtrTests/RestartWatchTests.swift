import Testing

@testable import dtr

@Suite("RestartWatch: telling a coordinator's restart from its uptime")
struct RestartWatchTests {
    private let origin = ContinuousClock.now

    /// The instant `seconds` after the origin.
    private func at(_ seconds: Double) -> ContinuousClock.Instant {
        origin + .seconds(seconds)
    }

    /// Feeds `watch` the answer of a coordinator started at `started` (seconds after the origin) to a request sent at
    /// `sent` that took `roundTrip` seconds, the server reading its clock `serverDelay` seconds after the sending.
    private func observe(
        _ watch: inout RestartWatch, started: Double, sent: Double, roundTrip: Double = 0.002,
        serverDelay: Double? = nil
    ) -> Bool {
        let measured = sent + (serverDelay ?? roundTrip / 2)
        return watch.restarted(uptime: measured - started, sent: at(sent), received: at(sent + roundTrip))
    }

    @Test("the same coordinator is never taken for a restarted one, however the round trips vary")
    func running() {
        var watch = RestartWatch()
        for poll in 0..<200 {
            // Round trips from 1 ms to 2 s; the server reads its clock anywhere within them.
            let roundTrip = [0.001, 0.05, 2.0, 0.3][poll % 4]
            let delay = roundTrip * [0.0, 1.0, 0.5][poll % 3]
            let restarted = observe(
                &watch, started: 0, sent: Double(poll) * 0.5 + 1, roundTrip: roundTrip, serverDelay: delay)
            #expect(!restarted, "poll \(poll)")
        }
    }

    @Test("a restart is seen even when the old coordinator lived half a second and the new one is older than it was")
    func youngCoordinator() {
        var watch = RestartWatch()
        let first = observe(&watch, started: 0, sent: 0.05)
        let second = observe(&watch, started: 0, sent: 0.4)
        // Killed at 0.45 s; a new one starts at 0.6 s and is first asked at 1.5 s (uptime 0.9 s > 0.4 s seen last).
        let restarted = observe(&watch, started: 0.6, sent: 1.5)
        let followed = observe(&watch, started: 0.6, sent: 2.0)
        #expect(!first && !second && restarted && !followed)
    }

    @Test("a restart after a long outage, and an outage without a restart")
    func outages() {
        var restartedWatch = RestartWatch()
        _ = observe(&restartedWatch, started: 0, sent: 3600)
        let restarted = observe(&restartedWatch, started: 3700, sent: 3702)
        var unreachable = RestartWatch()
        _ = observe(&unreachable, started: 0, sent: 3600)
        let stillRunning = observe(&unreachable, started: 0, sent: 3900)
        #expect(restarted && !stillRunning)
    }

    @Test("answers without an uptime change nothing")
    func unknown() {
        var watch = RestartWatch()
        let none = watch.restarted(uptime: nil, sent: at(1), received: at(1.01))
        let first = observe(&watch, started: 0, sent: 2)
        let missing = watch.restarted(uptime: nil, sent: at(3), received: at(3.01))
        let restarted = observe(&watch, started: 3.5, sent: 4)
        #expect(!none && !first && !missing && restarted)
    }
}
