import Swarm

/// How a swarm came back to a coordinator that was killed and restarted, from the times its sessions broke
/// (``SwarmSessions/breakTimes``) and its connections were attempted and made (``SwarmConnections/connectionTimes``):
/// when it noticed, when it first tried to connect again, how many attempts it made, and when the first and every
/// connection were up again.
struct Reconnection {
    /// The kill → the first session broken (seconds): when the swarm noticed.
    var firstBreak: Double?
    /// The kill → the first connection attempt (seconds).
    var firstAttempt: Double?
    /// Sessions broken since the kill before the first attempt (all of them if there was none; a session that breaks
    /// is opened again after the SDK's backoff, 40 ms to 1.2 s, see ``SwarmSessions``, so one worker's session can
    /// break several times).
    var breaksBeforeFirstAttempt: Int
    /// Sessions broken since the kill before the first connection was up again (all of them if none was).
    var breaksBeforeFirstUp: Int
    /// Connection attempts since the kill, of every connection.
    var attempts: Int
    /// Those made before the coordinator was listening, as far as the benchmark knows (its ready line read): as a
    /// rule refused, though one made between the listen and the ready line can succeed.
    var attemptsBeforeListening: Int
    /// How long before listening the last of those was made (seconds), if there was one: a connection it did not
    /// make waited for the clients' backoff before its next attempt.
    var lastAttemptBeforeListening: Double?
    /// Connections made since the kill: the swarm's count, or more if one was made again.
    var ups: Int
    /// How many of the swarm's connections were made more than once since the kill.
    var madeAgain: Int
    /// When the first connection was up again (``monotonicNanoseconds()``): the sessions start coming back.
    var firstUpAt: Int64?
    /// Listening → the first connection up again (seconds; below zero if it was up before the ready line was read).
    var firstUp: Double?
    /// Listening → the last of the swarm's connections up again (each counted at its first since the kill), if
    /// every one was.
    var allUp: Double?

    /// Reads `times` (one entry for each of the swarm's connections) and its sessions' `breaks`; `killed` and
    /// `listening` on the same clock (``monotonicNanoseconds()``).
    init(_ times: [(attempted: [Int64], up: [Int64])], breaks: [Int64], killed: Int64, listening: Int64) {
        let attempted = times.flatMap { $0.attempted.filter { $0 > killed } }.sorted()
        let upByConnection = times.map { $0.up.filter { $0 > killed }.sorted() }
        let firstUps = upByConnection.compactMap(\.first).sorted()
        let afterListening = { (instant: Int64) in Double(instant - listening) / 1e9 }
        let afterKill = { (instant: Int64) in Double(instant - killed) / 1e9 }
        let broken = breaks.filter { $0 > killed }
        firstBreak = broken.min().map(afterKill)
        firstAttempt = attempted.first.map(afterKill)
        breaksBeforeFirstAttempt = broken.count { $0 < attempted.first ?? .max }
        breaksBeforeFirstUp = broken.count { $0 < firstUps.first ?? .max }
        attempts = attempted.count
        let early = attempted.filter { $0 < listening }
        attemptsBeforeListening = early.count
        lastAttemptBeforeListening = early.last.map { -afterListening($0) }
        ups = upByConnection.reduce(0) { $0 + $1.count }
        madeAgain = upByConnection.count { $0.count > 1 }
        firstUpAt = firstUps.first
        firstUp = firstUps.first.map(afterListening)
        allUp = !times.isEmpty && firstUps.count == times.count ? firstUps.last.map(afterListening) : nil
    }
}
