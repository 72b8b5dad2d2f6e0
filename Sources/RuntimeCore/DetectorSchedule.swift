/// When the failure detector runs: regular ticks on a fixed schedule (a tick's own work does not push the next one
/// back), and between them a check of deaths alone at the earliest member's death deadline
/// (``Membership/nextDeathDue``), so that a death is declared at its dead timeout rather than up to a tick later.
///
/// A check of deaths comes at least ``spacing`` (a fifth of the interval) after the previous run; regular ticks keep
/// their schedule, so one may follow a check closely. A wave of deaths spread over a heartbeat interval (a partition,
/// a rack losing power) is declared in at most five batches a tick, each one epoch bump, one persisted change and one
/// membership change for the ledgers and barriers, not one for every death; a death is declared at most one spacing
/// after its deadline (plus a run in progress).
///
/// Times are monotonic durations on the caller's clock; the shell sleeps until ``next(deathDue:)``'s moment, runs
/// what it names and reports it with ``ran(_:finishedAt:)``.
public struct DetectorSchedule: Sendable {
    /// What the shell runs.
    public enum Run: Equatable, Sendable {
        /// The whole tick (``Membership/onTick(now:arrivals:lag:)`` with barrier and checkpoint timeouts, paced
        /// events).
        case tick
        /// The failure detector alone.
        case deaths
    }

    /// The regular ticks' interval.
    public let interval: Duration
    /// The least time between a check of deaths and the run before it.
    public var spacing: Duration { interval / 5 }
    private(set) var nextTick: Duration
    private(set) var lastRun: Duration

    /// Ticks every `interval`, the first one interval after `now`.
    public init(interval: Duration, startingAt now: Duration) {
        self.interval = interval
        nextTick = now + interval
        lastRun = now
    }

    /// What runs next and when, given the earliest death deadline (nil: no member).
    public func next(deathDue: Duration?) -> (run: Run, at: Duration) {
        if let deathDue {
            let at = max(deathDue, lastRun + spacing)
            if at < nextTick { return (.deaths, at) }
        }
        return (.tick, nextTick)
    }

    /// `run` finished at `now`. Behind after a tick (one longer than the interval, a stall), the schedule starts over
    /// with a whole interval rather than catching up with ticks back to back.
    public mutating func ran(_ run: Run, finishedAt now: Duration) {
        lastRun = now
        guard run == .tick else { return }
        nextTick += interval
        if nextTick <= now { nextTick = now + interval }
    }
}
