import Testing

@testable import RuntimeCore

@Suite("DetectorSchedule: ticks on a fixed schedule, deaths at their deadline, runs spaced")
struct DetectorScheduleTests {
    func ms(_ value: Int) -> Duration { .milliseconds(value) }

    @Test("with no deadline before the next tick, regular ticks keep their schedule whatever a tick takes")
    func fixedTicks() {
        var schedule = DetectorSchedule(interval: ms(250), startingAt: .zero)
        #expect(schedule.next(deathDue: nil) == (.tick, ms(250)))
        schedule.ran(.tick, finishedAt: ms(290))  // a tick of 40 ms does not push the next one back
        #expect(schedule.next(deathDue: nil) == (.tick, ms(500)))
        #expect(schedule.next(deathDue: ms(600)) == (.tick, ms(500)), "a deadline after the next tick waits for it")
        #expect(schedule.next(deathDue: ms(500)) == (.tick, ms(500)))
    }

    @Test("a deadline between ticks is checked at the deadline itself, then the regular tick follows")
    func deathAtDeadline() {
        var schedule = DetectorSchedule(interval: ms(250), startingAt: .zero)
        schedule.ran(.tick, finishedAt: ms(251))
        #expect(schedule.next(deathDue: ms(377)) == (.deaths, ms(377)))
        schedule.ran(.deaths, finishedAt: ms(378))
        #expect(schedule.next(deathDue: ms(900)) == (.tick, ms(500)))
    }

    @Test("a deadline just after a run, or already past, waits one spacing after the last run")
    func spacing() {
        var schedule = DetectorSchedule(interval: ms(250), startingAt: .zero)
        #expect(schedule.spacing == ms(50))
        schedule.ran(.tick, finishedAt: ms(250))
        #expect(schedule.next(deathDue: ms(260)) == (.deaths, ms(300)))
        #expect(schedule.next(deathDue: ms(100)) == (.deaths, ms(300)), "a stale deadline does not run at once")
        schedule.ran(.deaths, finishedAt: ms(470))
        #expect(schedule.next(deathDue: ms(480)) == (.tick, ms(500)), "not before the tick when spacing reaches it")
    }

    @Test("a tick that overruns the next one starts the schedule over instead of ticking back to back")
    func behind() {
        var schedule = DetectorSchedule(interval: ms(250), startingAt: .zero)
        schedule.ran(.tick, finishedAt: ms(900))
        #expect(schedule.next(deathDue: nil) == (.tick, ms(1150)))
    }

    @Test("a wave of deaths due every millisecond for 2 s is checked at most 4 times between two ticks")
    func waveIsBatched() {
        var schedule = DetectorSchedule(interval: ms(250), startingAt: .zero)
        var now = Duration.zero
        var deathsSinceTick = 0
        var mostBetweenTicks = 0
        var checks = 0
        var lateness: [Duration] = []
        // Deadlines at 1, 2, ..., 2000 ms; each run declares every death due by then.
        var pending = (1...2000).map(ms)
        while now < ms(2500) {
            let (run, at) = schedule.next(deathDue: pending.first)
            #expect(at >= now)
            now = at
            let due = pending.prefix { $0 <= now }
            lateness += due.map { now - $0 }
            pending.removeFirst(due.count)
            if run == .deaths {
                checks += 1
                deathsSinceTick += 1
                mostBetweenTicks = max(mostBetweenTicks, deathsSinceTick)
            } else {
                deathsSinceTick = 0
            }
            now += ms(2)  // each run takes 2 ms
            schedule.ran(run, finishedAt: now)
        }
        #expect(pending.isEmpty)
        #expect(mostBetweenTicks == 4)
        #expect(checks >= 30 && checks <= 32, "4 checks in each of the 8 intervals, give or take the ends")
        #expect(lateness.max()! <= ms(50) + ms(2), "no death declared later than one spacing (plus a run)")
    }
}
