import Foundation
import Hummingbird
import NIOCore
import RuntimeCore

/// `GET /api/events` (server-sent events) and `POST /api/events/ticket`: see docs/API.md.
struct EventsRoute: Sendable {
    let bus: EventBus
    /// With an admin token, streams need a ticket (EventSource cannot send the token).
    let ticketsRequired: Bool

    /// The kernel send buffer of a stream's connection. Linux grows it up to 4 MiB by default, which would let a
    /// client that stopped reading hold megabytes of kernel memory before its queue even starts to fill; events are
    /// small and come at a bounded rate, so a small buffer costs nothing and keeps every client's memory bounded.
    static let sendBufferBytes = 64 << 10
    /// Frames per write when replaying.
    static let replayBatch = 256
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")

    /// `GET /api/events?since=<id>&ticket=<ticket>` (a `Last-Event-ID` header takes precedence over `since`).
    func stream(_ request: Request, context: APIRequestContext) throws -> Response {
        if ticketsRequired {
            guard let ticket = request.uri.queryParameters.get("ticket") else {
                throw CoreError(
                    .unauthenticated,
                    "this coordinator requires a ticket for the event stream: POST /api/events/ticket with "
                        + "Authorization: Bearer <DTR_ADMIN_TOKEN>, then GET /api/events?ticket=<ticket>",
                    reason: .tokenMissing)
            }
            guard bus.isValidTicket(ticket) else {
                throw CoreError(
                    .unauthenticated,
                    "the ticket is wrong or expired (tickets last \(Int(bus.configuration.ticketLifetime.seconds)) s): "
                        + "POST /api/events/ticket for a new one",
                    reason: .tokenWrong)
            }
        }
        let since = try Self.since(request)
        let channel = context.channel
        // Deferred to the channel's event loop, never run inline: the bus may be publishing from inside the log
        // handler, and a close that logged would then wait for itself.
        let disconnect: @Sendable () -> Void = { channel.eventLoop.execute { channel.close(promise: nil) } }
        guard let subscription = bus.subscribe(since: since, disconnect: disconnect) else {
            throw CoreError(
                .unavailable, "the coordinator is shutting down: reconnect when it is back", reason: .shuttingDown)
        }
        // Best effort: a test channel has no socket.
        channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: Self.sendBufferBytes).whenFailure { _ in }
        let bus = self.bus
        let body = ResponseBody { writer in
            defer { bus.unsubscribe(subscription.id) }
            for chunk in Self.opening(subscription, runID: bus.runID) { try await writer.write(chunk) }
            for await item in subscription.items {
                switch item {
                case .frame(let frame): try await writer.write(frame.bytes)
                case .keepAlive: try await writer.write(Self.keepAlive)
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// `POST /api/events/ticket`.
    func ticket() throws(CoreError) -> TicketBody {
        TicketBody(
            ticket: try bus.issueTicket(), expiresInSeconds: Int(bus.configuration.ticketLifetime.seconds))
    }

    /// The first writes of a stream: the reconnection delay, `hello`, then `reset` or the replayed events.
    static func opening(_ subscription: EventBus.Subscription, runID: String) -> [ByteBuffer] {
        var first = ByteBuffer(string: "retry: 2000\n\n")
        var hello = EventFrame.render(
            id: 0, type: .hello,
            data: EventFrame.json(HelloEventBody(runID: runID, lastEventID: subscription.lastEventID)))
        first.writeBuffer(&hello)
        switch subscription.start {
        case .reset(let reason):
            var reset = EventFrame.render(id: 0, type: .reset, data: EventFrame.json(ResetEventBody(reason: reason)))
            first.writeBuffer(&reset)
            return [first]
        case .replay(let frames):
            var chunks = [first]
            for start in stride(from: 0, to: frames.count, by: replayBatch) {
                var chunk = ByteBuffer()
                for frame in frames[start..<min(start + replayBatch, frames.count)] {
                    var bytes = frame.bytes
                    chunk.writeBuffer(&bytes)
                }
                chunks.append(chunk)
            }
            return chunks
        }
    }

    /// The id the client saw last: `Last-Event-ID` (sent by a reconnecting EventSource), else `since`.
    static func since(_ request: Request) throws(CoreError) -> UInt64? {
        if let header = request.headers.first(where: { $0.name.canonicalName == "last-event-id" })?.value,
            !header.isEmpty
        {
            guard let id = UInt64(header) else {
                throw CoreError.invalid(
                    "Last-Event-ID", "must be an event id (a whole number >= 0)", got: Validation.quoted(header))
            }
            return id
        }
        guard let raw = request.uri.queryParameters.get("since") else { return nil }
        guard let id = UInt64(raw) else {
            throw CoreError.invalid("since", "must be an event id (a whole number >= 0)", got: Validation.quoted(raw))
        }
        return id
    }
}

/// `POST /api/events/ticket`.
struct TicketBody: ResponseEncodable {
    var ticket: String
    var expiresInSeconds: Int

    enum CodingKeys: String, CodingKey {
        case ticket
        case expiresInSeconds = "expires_in_seconds"
    }
}
