import RuntimeCore

/// Short-lived tickets for `GET /api/events` on a coordinator with an admin token: a browser's `EventSource` cannot
/// send an `Authorization` header, so the page trades the token for a random ticket (`POST /api/events/ticket`) and
/// puts that in the stream's URL. A ticket is good for any number of connections until it expires, and is useless
/// to whoever reads it from a log or a history after that.
struct EventTickets: Sendable {
    /// Most unexpired tickets at once (issuing more is refused): memory stays bounded whatever clients do.
    static let maxLive = 10_000

    /// How long a ticket is accepted.
    let lifetime: Duration
    private var expiries: [String: Duration] = [:]

    /// Tickets accepted for `lifetime` after they are issued.
    init(lifetime: Duration) {
        self.lifetime = lifetime
    }

    /// Records `ticket` (a fresh random string) as issued at monotonic time `now`.
    ///
    /// - Throws: `resourceExhausted` when ``maxLive`` tickets are unexpired.
    mutating func issue(_ ticket: String, now: Duration) throws(CoreError) {
        if expiries.count >= Self.maxLive { expiries = expiries.filter { $0.value > now } }
        guard expiries.count < Self.maxLive else {
            throw CoreError(
                .resourceExhausted,
                "\(Self.maxLive) event tickets are unexpired: wait \(lifetime) for them to expire and ask again",
                reason: .limitReached)
        }
        expiries[ticket] = now + lifetime
    }

    /// Whether `ticket` was issued and has not expired at `now`.
    func isValid(_ ticket: String, now: Duration) -> Bool {
        guard let expiry = expiries[ticket] else { return false }
        return now < expiry
    }
}
