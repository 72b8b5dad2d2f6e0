import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Coordinator

@Suite("SchedulingLag: how far behind the coordinator's threads run")
struct SchedulingLagTests {
    func ms(_ value: Int) -> Duration { .milliseconds(value) }

    @Test("the lag is the event loops' worst plus the pool's, pending jobs count, and each take starts over")
    func arithmetic() {
        let lag = SchedulingLag()
        let loopA = lag.addProbe(.eventLoop)
        let loopB = lag.addProbe(.eventLoop)
        let pool = lag.addProbe(.pool)
        #expect(lag.take(now: ms(0)) == .zero, "no job asked for: no lag")

        lag.expect(loopA, due: ms(100))
        lag.ran(loopA, at: ms(130))
        lag.expect(loopB, due: ms(100))
        lag.ran(loopB, at: ms(180))
        lag.expect(pool, due: ms(100))
        lag.ran(pool, at: ms(120))
        #expect(lag.take(now: ms(200)) == ms(80) + ms(20), "the slower loop's 80 ms plus the pool's 20 ms")
        #expect(lag.take(now: ms(200)) == .zero, "taken: starts over")

        // A job still waiting counts as late as it is; the engine's wait counts as the pool's.
        lag.expect(pool, due: ms(300))
        #expect(lag.take(now: ms(250)) == .zero, "not due yet")
        #expect(lag.take(now: ms(700)) == ms(400))
        #expect(lag.take(now: ms(700), engineWait: ms(900)) == ms(900), "the larger of the pool's and the engine's")
        lag.ran(pool, at: ms(710))
        #expect(lag.take(now: ms(720)) == ms(410), "the job ran 410 ms late")
        #expect(lag.take(now: ms(720)) == .zero)
    }

    @Test("an event loop busy for 300 ms shows as at least 250 ms of lag; a stopped probe counts for nothing")
    func blockedEventLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let lag = SchedulingLag()
        let clock = ContinuousClock()
        let origin = clock.now
        let now: @Sendable () -> Duration = { clock.now - origin }
        let probing = Task { await lag.probeEventLoops(of: group, now: now) }

        try await Task.sleep(for: ms(200))
        _ = lag.take(now: now())
        try await group.next().submit { Thread.sleep(forTimeInterval: 0.3) }.get()
        let busy = lag.take(now: now())
        #expect(busy >= ms(250), "the probe waited behind the 300 ms job (\(busy))")

        probing.cancel()
        await probing.value
        _ = lag.take(now: now())
        // Stopped, with the loop blocked so that a job it had queued would look ever later: nothing pending counts.
        let blocked = group.next().submit { Thread.sleep(forTimeInterval: 0.2) }
        try await Task.sleep(for: ms(100))
        #expect(lag.take(now: now() + .seconds(10)) == .zero)
        try await blocked.get()
        try await group.shutdownGracefully()
    }
}
