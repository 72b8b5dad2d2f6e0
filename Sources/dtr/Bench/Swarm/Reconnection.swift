import Swarm

/// How a swarm came back to a coordinator that was killed and restarted, from the times its sessions broke
/// (``SwarmSessions/breakTimes``) and its connections were attempted and made (``SwarmConnections/connectionTimes``):
/// when it noticed, when it first tried to connect again, how many attempts it made, and when the first and every
/// connection were up again.
struct Reconnection: Equatable {
    /// The kill → the first session broken (seconds): when the swarm noticed.
    var firstBreak: Double?
    /// The kill → the first connection attempt (seconds).
    var firstAttempt: Double?
    /// Connection attempts since the kill.
    var attempts: Int
    /// Those made before the coordinator listened (refused: nothing was listening yet).
    var attemptsBeforeListening: Int
    /// How long before listening the last of those was made (seconds), if there was one: the clients' backoff
    /// between it and the next attempt is what the first connection waited for after listening.
    var lastAttemptBeforeListening: Double?
    /// When the first connection was up again (``monotonicNanoseconds()``): the sessions start coming back.
    var firstUpAt: Int64?
    /// Listening → the first connection up again (seconds; below zero if it was up before the ready line was read).
    var firstUp: Double?
    /// Listening → every one of the swarm's connections up again, if all were.
    var allUp: Double?

    /// Reads `times` of a swarm of `connections` connections and its sessions' `breaks`; `killed` and `listening` on
    /// the same clock (``monotonicNanoseconds()``).
    init(
        _ times: (attempted: [Int64], up: [Int64]), breaks: [Int64], connections: Int, killed: Int64,
        listening: Int64
    ) {
        let attempted = times.attempted.filter { $0 > killed }.sorted()
        let up = times.up.filter { $0 > killed }.sorted()
        let afterListening = { (instant: Int64) in Double(instant - listening) / 1e9 }
        let afterKill = { (instant: Int64) in Double(instant - killed) / 1e9 }
        firstBreak = breaks.filter { $0 > killed }.min().map(afterKill)
        firstAttempt = attempted.first.map(afterKill)
        attempts = attempted.count
        let early = attempted.filter { $0 < listening }
        attemptsBeforeListening = early.count
        lastAttemptBeforeListening = early.last.map { -afterListening($0) }
        firstUpAt = up.first
        firstUp = up.first.map(afterListening)
        allUp = connections > 0 && up.count >= connections ? afterListening(up[connections - 1]) : nil
    }
}
