import Foundation
import RuntimeCore
import Synchronization

/// The live updates of `GET /api/events`: the engine (and the log handler) publish typed events; each gets the next
/// id, goes into a replay buffer of the last ``Configuration/replayCapacity`` events, and into the queue of every
/// connected client.
///
/// Publishing never waits for a client: it appends to the buffer and to each client's bounded queue under one short
/// lock. A client whose queue is full (it reads more slowly than events come) is disconnected at once; it reconnects
/// with the last id it saw and gets the rest from the replay buffer, or a `reset`. Event bodies are encoded lazily by
/// the clients' writers, so the engine hands over values and never encodes JSON for them.
public final class EventBus: Sendable {
    /// The bus's limits.
    public struct Configuration: Sendable {
        /// Events kept for clients that reconnect. Default 4096.
        public var replayCapacity: Int
        /// Events queued per client before it counts as too slow and is disconnected. Default 1024.
        public var clientQueue: Int
        /// Time between keep-alive comments on every stream. Default 15 s.
        public var keepAliveInterval: Duration
        /// How long a ticket from `POST /api/events/ticket` is accepted. Default 60 s.
        public var ticketLifetime: Duration

        /// The defaults, or what is given.
        public init(
            replayCapacity: Int = 4096, clientQueue: Int = 1024, keepAliveInterval: Duration = .seconds(15),
            ticketLifetime: Duration = .seconds(60)
        ) {
            self.replayCapacity = replayCapacity
            self.clientQueue = clientQueue
            self.keepAliveInterval = keepAliveInterval
            self.ticketLifetime = ticketLifetime
        }
    }

    /// What a client's stream carries after its start.
    enum Item: Sendable {
        /// An event.
        case frame(EventFrame)
        /// Time for a keep-alive comment.
        case keepAlive
    }

    /// One connected client.
    private struct Client: Sendable {
        var continuation: AsyncStream<Item>.Continuation
        /// Closes the client's connection (its writer may be stuck writing to a client that stopped reading).
        var disconnect: @Sendable () -> Void
    }

    private struct State: Sendable {
        var buffer: ReplayBuffer<EventFrame>
        var clients: [UInt64: Client] = [:]
        var nextClient: UInt64 = 0
        var closed = false
        var tickets: EventTickets
    }

    /// The limits.
    public let configuration: Configuration
    /// Random per bus (one bus per coordinator run): event ids restart at 1 each run, so a client tells runs apart
    /// by this.
    public let runID: String
    private let state: Mutex<State>
    private let clientCount = Atomic<Int>(0)
    private let now: @Sendable () -> Duration
    private let metrics: CoordinatorMetrics?

    /// A bus with `configuration`, reading monotonic time (for ticket expiry) from `now`, counting the clients it
    /// disconnects for slowness in `metrics`.
    public init(
        configuration: Configuration = Configuration(), metrics: CoordinatorMetrics? = nil,
        now: (@Sendable () -> Duration)? = nil
    ) {
        self.configuration = configuration
        self.metrics = metrics
        let origin = ContinuousClock.now
        self.now = now ?? { ContinuousClock.now - origin }
        runID = EventBus.randomHex(bytes: 8)
        state = Mutex(
            State(
                buffer: ReplayBuffer(capacity: configuration.replayCapacity),
                tickets: EventTickets(lifetime: configuration.ticketLifetime)))
    }

    // MARK: Publishing

    /// Whether any client is connected (cheap: an atomic load, for hot paths that skip work nobody would see).
    public var hasClients: Bool { clientCount.load(ordering: .relaxed) > 0 }

    /// Number of connected clients.
    public var clients: Int { clientCount.load(ordering: .relaxed) }

    /// The id of the newest event (0 before the first).
    public var lastEventID: UInt64 { state.withLock { $0.buffer.lastID } }

    /// Publishes an event whose data is `body()` (called later, off the caller's thread, by a client's writer).
    func publish(_ type: EventType, _ body: @escaping @Sendable () -> any Encodable) {
        let slow = state.withLock { state -> [Client] in
            guard !state.closed else { return [] }
            let frame = EventFrame(id: state.buffer.nextID, type: type, body: body)
            state.buffer.append(frame)
            return deliver(.frame(frame), in: &state)
        }
        disconnect(slow)
    }

    /// Queues a keep-alive comment for every client.
    func keepAlive() {
        disconnect(state.withLock { state in state.closed ? [] : deliver(.keepAlive, in: &state) })
    }

    /// Queues `item` for every client; removes and returns those whose queue is full (and forgets those whose stream
    /// ended).
    private func deliver(_ item: Item, in state: inout State) -> [Client] {
        var slow: [Client] = []
        for (id, client) in state.clients {
            switch client.continuation.yield(item) {
            case .enqueued:
                continue
            case .dropped:
                slow.append(client)
                state.clients[id] = nil
            case .terminated:
                // Its writer is gone (and about to unsubscribe).
                state.clients[id] = nil
            @unknown default:
                continue
            }
        }
        clientCount.store(state.clients.count, ordering: .relaxed)
        return slow
    }

    private func disconnect(_ slow: [Client]) {
        for client in slow {
            client.continuation.finish()
            client.disconnect()
            metrics?.recordEventClientDropped()
        }
    }

    // MARK: Subscribing

    /// How a new stream starts.
    enum Start: Sendable {
        /// The events after the client's `since` (none without one).
        case replay([EventFrame])
        /// The client's `since` is too old or from another run.
        case reset(reason: String)
    }

    /// A connected client's stream.
    struct Subscription: Sendable {
        /// The client's id on this bus.
        let id: UInt64
        /// The newest event id when it connected.
        let lastEventID: UInt64
        /// What it gets first.
        let start: Start
        /// The events after that, and keep-alives; ends when the bus closes or the client is too slow.
        let items: AsyncStream<Item>
    }

    /// Connects a client that saw every event up to `since` (nil: none it cares about). `disconnect` closes its
    /// connection, for when it falls behind: it must only schedule the close (it may be called while the log handler
    /// records an entry). Returns nil once the bus is closed (the coordinator is shutting down).
    func subscribe(since: UInt64?, disconnect: @escaping @Sendable () -> Void) -> Subscription? {
        let (items, continuation) = AsyncStream.makeStream(
            of: Item.self, bufferingPolicy: .bufferingOldest(max(1, configuration.clientQueue)))
        let subscription = state.withLock { state -> Subscription? in
            guard !state.closed else { return nil }
            let start: Start
            switch since.map({ state.buffer.resume(after: $0) }) ?? .replay([]) {
            case .replay(let frames):
                start = .replay(frames)
            case .reset:
                let (asked, last) = (since ?? 0, state.buffer.lastID)
                start = .reset(
                    reason: asked > last
                        ? "event \(asked) is not from this run of the coordinator (its newest event is \(last))"
                        : "events after \(asked) are no longer buffered (the coordinator keeps the last "
                            + "\(state.buffer.capacity)): reload GET /api/dashboard")
            }
            state.nextClient += 1
            state.clients[state.nextClient] = Client(continuation: continuation, disconnect: disconnect)
            clientCount.store(state.clients.count, ordering: .relaxed)
            return Subscription(id: state.nextClient, lastEventID: state.buffer.lastID, start: start, items: items)
        }
        if subscription == nil { continuation.finish() }
        return subscription
    }

    /// The client's stream ended (it went away, or its writer finished).
    func unsubscribe(_ id: UInt64) {
        let client = state.withLock { state -> Client? in
            let client = state.clients.removeValue(forKey: id)
            clientCount.store(state.clients.count, ordering: .relaxed)
            return client
        }
        client?.continuation.finish()
    }

    // MARK: Tickets

    /// A new ticket for `GET /api/events?ticket=...`, valid for ``Configuration/ticketLifetime``.
    ///
    /// - Throws: `resourceExhausted` when too many tickets are unexpired.
    func issueTicket() throws(CoreError) -> String {
        let ticket = Self.randomHex(bytes: 16)
        let moment = now()
        try state.withLock { state throws(CoreError) in try state.tickets.issue(ticket, now: moment) }
        return ticket
    }

    /// Whether `ticket` was issued by this bus and has not expired.
    func isValidTicket(_ ticket: String) -> Bool {
        let moment = now()
        return state.withLock { $0.tickets.isValid(ticket, now: moment) }
    }

    // MARK: Shutdown

    /// The coordinator is shutting down: every stream ends (after the events already queued for it), and new clients
    /// are refused. Returns once every writer finished, or after `grace`, when the connections of writers still stuck
    /// (on clients that stopped reading) are closed.
    func close(grace: Duration = .seconds(2)) async {
        let clients = state.withLock { state in
            state.closed = true
            return Array(state.clients.values)
        }
        for client in clients { client.continuation.finish() }
        let deadline = ContinuousClock.now + grace
        while hasClients, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stuck = state.withLock { state in
            defer { state.clients = [:] }
            return Array(state.clients.values)
        }
        clientCount.store(0, ordering: .relaxed)
        for client in stuck { client.disconnect() }
    }

    /// Random lower-case hex from the system's cryptographic generator.
    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
