/// Timeouts of the failure detector.
public struct MembershipConfig: Sendable, Hashable {
    /// How often workers heartbeat (told to them at registration). Default 1 s.
    public var heartbeatInterval: Duration
    /// Silence after which a worker is SUSPECT. Default 2 s.
    public var suspectAfter: Duration
    /// Silence after which a worker is DEAD and loses its rank. Default 5 s.
    public var deadAfter: Duration
    /// How long dead and departed workers stay listed before they are forgotten. Default 10 min.
    public var departedRetention: Duration

    /// Creates a configuration, checking that the timeouts are ordered.
    public init(
        heartbeatInterval: Duration = .seconds(1), suspectAfter: Duration = .seconds(2),
        deadAfter: Duration = .seconds(5), departedRetention: Duration = .seconds(600)
    ) throws(CoreError) {
        guard heartbeatInterval >= .milliseconds(10) else {
            throw .invalid("heartbeat interval", "must be at least 10ms", got: "\(heartbeatInterval)")
        }
        guard suspectAfter > heartbeatInterval else {
            throw .invalid(
                "suspect timeout", "must be longer than the heartbeat interval (\(heartbeatInterval))",
                got: "\(suspectAfter)")
        }
        guard deadAfter > suspectAfter else {
            throw .invalid(
                "dead timeout", "must be longer than the suspect timeout (\(suspectAfter))",
                got: "\(deadAfter)")
        }
        guard departedRetention >= .zero else {
            throw .invalid("departed retention", "must not be negative", got: "\(departedRetention)")
        }
        self.init(
            unchecked: heartbeatInterval, suspectAfter: suspectAfter, deadAfter: deadAfter,
            departedRetention: departedRetention)
    }

    private init(unchecked interval: Duration, suspectAfter: Duration, deadAfter: Duration, departedRetention: Duration)
    {
        self.heartbeatInterval = interval
        self.suspectAfter = suspectAfter
        self.deadAfter = deadAfter
        self.departedRetention = departedRetention
    }

    /// The defaults: 1 s / 2 s / 5 s, 10 min retention.
    public static let defaults = MembershipConfig(
        unchecked: .seconds(1), suspectAfter: .seconds(2), deadAfter: .seconds(5), departedRetention: .seconds(600))

    /// How often the shell should call ``Membership/onTick(now:)``: often enough that a death is noticed well within
    /// one heartbeat interval of the dead timeout.
    public var tickInterval: Duration {
        min(max(heartbeatInterval / 4, .milliseconds(5)), .milliseconds(250))
    }

    /// A gap between ticks longer than this means the coordinator itself stalled (paused process, overloaded host):
    /// silences measured across it are not the workers' fault. The suspect timeout, but at least one second, so that
    /// ordinary scheduling hiccups under aggressive timeouts do not count as stalls.
    public var stallThreshold: Duration { max(suspectAfter, .seconds(1)) }

    /// The most the failure detector extends its timeouts by when the coordinator runs behind (the `lag` of
    /// ``Membership/onTick(now:arrivals:lag:)``): the dead timeout, so that a coordinator that stays overloaded still
    /// declares a dead worker dead within twice the dead timeout.
    public var maxLagGrace: Duration { deadAfter }
}
