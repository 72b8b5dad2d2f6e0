import NIOCore
import NIOHPACK
import NIOHTTP2
import RuntimeCore

/// Answers a gRPC request message larger than the server accepts with the status `RESOURCE_EXHAUSTED` (reason
/// `TOO_LARGE`) and a message naming the limit and the flag that sets it.
///
/// grpc-swift-nio-transport (2.9) refuses such a message by resetting the stream (`RST_STREAM CANCEL`), so the
/// client only learns that its call was cancelled. This handler sits first in each HTTP/2 stream's pipeline, reads
/// the 5-byte prefix of every message (flag, then the length, big-endian) as the DATA frames pass, and on a declared
/// length over the limit sends the status as trailers itself, then ends the stream with `RST_STREAM NO_ERROR`, as the
/// gRPC HTTP/2 protocol says a server should when it answers before the request is complete. The oversized message
/// never reaches gRPC, so the call changes nothing. (A compressed message is checked by its compressed length here;
/// gRPC itself still refuses one that inflates past the limit.)
final class GRPCMessageSizeGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Largest message accepted, in bytes (the transport's `maxRequestPayloadSize`, or a method's own lower limit).
    private var maxBytes: Int
    /// What sets the limit and what to do, for the message: e.g. "--barrier-max-payload + 1 MiB".
    private var limitSource: String
    private var advice = "send less, or raise the coordinator's --barrier-max-payload"
    /// Where the stream is in its messages.
    private var scanner: GRPCMessageScanner
    /// Whether the response's headers went out (a refusal then sends trailers only, without `:status`).
    private var respondedHeaders = false
    /// Whether the server ended its side of the stream (gRPC then ignores what the client still sends, and so do we).
    private var serverEnded = false
    /// Whether this handler refused a message: the rest of the stream goes nowhere.
    private var refused = false
    /// What every stream's messages being received may take together (and those of one connection), and what this
    /// stream's current one holds.
    private let budget: InboundBudget?
    private var charged = 0
    /// The HTTP/2 connection this stream belongs to, for its share of the budget.
    private let connection: ObjectIdentifier?

    /// A guard for one stream of `connection` (nil: a connection of its own).
    init(maxBytes: Int, limitSource: String, budget: InboundBudget? = nil, connection: ObjectIdentifier? = nil) {
        self.maxBytes = maxBytes
        self.limitSource = limitSource
        self.budget = budget
        self.connection = connection
        scanner = GRPCMessageScanner(maxBytes: maxBytes)
    }

    /// The key of this stream's connection in the budget.
    private var connectionKey: ObjectIdentifier { connection ?? ObjectIdentifier(self) }

    /// Gives back what the message being received holds.
    private func releaseCharge() {
        budget?.release(charged, connection: connectionKey)
        charged = 0
    }

    /// A callback for the transport's `onAcceptHTTP2Stream` that puts a guard first in each stream's pipeline.
    static func installer(maxBytes: Int, limitSource: String, budget: InboundBudget? = nil)
        -> @Sendable (any Channel) -> EventLoopFuture<Void>
    {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                // A stream's parent is its HTTP/2 connection: the streams of one connection share its budget.
                try channel.pipeline.syncOperations.addHandler(
                    GRPCMessageSizeGuard(
                        maxBytes: maxBytes, limitSource: limitSource, budget: budget,
                        connection: ObjectIdentifier(channel.parent ?? channel)),
                    position: .first)
            }
        }
    }

    /// The stream ended (or its pipeline went away): a message still being received gives its charge back.
    func handlerRemoved(context: ChannelHandlerContext) {
        releaseCharge()
    }

    func channelInactive(context: ChannelHandlerContext) {
        releaseCharge()
        context.fireChannelInactive()
    }

    /// Methods with a limit of their own, below the transport's, by HTTP/2 `:path`: their limit and what to do.
    ///
    /// Heartbeats are small (an id and at most 256 metrics of 128-byte names: under 40 KiB), and a session stream lives
    /// as long as its worker: without a limit of its own, every open session could hold a message of the transport's
    /// size (65 MiB) half-received, and the memory it took stays with the process after the stream ends.
    static let methodLimits: [String: (bytes: Int, source: String, advice: String)] = [
        "/dtruntime.v1.Coordinator/BarrierStream": (
            BarrierStreamOutbox.maxMessageBytes, "the limit of a BarrierStream message",
            "send fewer arrivals per message, and large payloads as BarrierSync calls"
        ),
        "/dtruntime.v1.Coordinator/WorkerSession": (
            maxHeartbeatBytes, "the limit of a heartbeat", "a heartbeat carries at most 256 metrics: send fewer"
        ),
        "/dtruntime.v1.Coordinator/Heartbeat": (
            maxHeartbeatBytes, "the limit of a heartbeat", "a heartbeat carries at most 256 metrics: send fewer"
        ),
    ]

    /// The largest heartbeat message (unary, or on a session stream): 64 KiB.
    static let maxHeartbeatBytes = 64 << 10

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .headers(let frame) = unwrapInboundIn(data), let path = frame.headers.first(name: ":path"),
            let limit = Self.methodLimits[path], limit.bytes < maxBytes
        {
            (maxBytes, limitSource, advice) = limit
            scanner = GRPCMessageScanner(maxBytes: maxBytes)
        }
        if !serverEnded, case .data(let frame) = unwrapInboundIn(data), case .byteBuffer(let buffer) = frame.data {
            var overBudget: (length: Int, refusal: InboundBudget.Refusal)?
            let oversized = scanner.oversizedLength(in: buffer) { event in
                guard let budget else { return true }
                switch event {
                case .started(let length):
                    if let refusal = budget.reserve(length, connection: connectionKey) {
                        overBudget = (length, refusal)
                        return false
                    }
                    charged = length
                case .finished:
                    releaseCharge()
                }
                return true
            }
            if let length = oversized {
                refuse(length: length, context: context)
                return
            }
            if let (length, refusal) = overBudget, let budget {
                refuse(
                    message: Self.message(refusing: length, for: refusal, budget: budget), retryAfterMs: 200,
                    context: context)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .headers(let headers):
            respondedHeaders = true
            if headers.endStream { serverEnded = true }
        case .rstStream:
            serverEnded = true
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// What a message refused for the budget's sake says: which limit, and what to do.
    static func message(refusing length: Int, for refusal: InboundBudget.Refusal, budget: InboundBudget) -> String {
        switch refusal {
        case .total(let inUse):
            "message of \(length) bytes refused: the coordinator is receiving \(inUse) bytes of messages at once (its "
                + "limit is \(budget.limit) bytes across all calls): try again shortly"
        case .connection(let inUse):
            "message of \(length) bytes refused: this connection is receiving \(inUse) bytes of messages at once (the "
                + "limit is \(budget.perConnection) bytes per connection, --grpc-inbound-per-connection): try again "
                + "shortly, send large messages on fewer calls at once, or raise the coordinator's "
                + "--grpc-inbound-per-connection"
        }
    }

    private func refuse(length: Int, context: ChannelHandlerContext) {
        refuse(
            message: "message of \(length) bytes is larger than this coordinator accepts (\(maxBytes) bytes: "
                + "\(limitSource)): \(advice)",
            retryAfterMs: nil, context: context)
    }

    /// Answers RESOURCE_EXHAUSTED: `TOO_LARGE` (final), or, with `retryAfterMs`, `LIMIT_REACHED` with `retry-after-ms`
    /// (the SDK waits and sends again: the message was refused before any of it reached a handler).
    private func refuse(message: String, retryAfterMs: Int?, context: ChannelHandlerContext) {
        refused = true
        releaseCharge()
        var trailers: HPACKHeaders = respondedHeaders ? [:] : [":status": "200", "content-type": "application/grpc"]
        trailers.add(name: "grpc-status", value: "8")  // RESOURCE_EXHAUSTED
        trailers.add(name: "grpc-message", value: Self.percentEncoded(message))
        if let retryAfterMs {
            trailers.add(name: ErrorMetadataKey.reason, value: ErrorReason.limitReached.rawValue)
            trailers.add(name: ErrorMetadataKey.retryAfterMs, value: String(retryAfterMs))
        } else {
            trailers.add(name: ErrorMetadataKey.reason, value: ErrorReason.tooLarge.rawValue)
        }
        context.write(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
        context.close(promise: nil)
    }

    /// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%`.
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            if (0x20...0x7E).contains(byte), byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return encoded
    }
}

/// Follows the length-prefixed messages of one gRPC stream through its DATA frames, however they are split.
struct GRPCMessageScanner {
    /// Largest message accepted, in bytes.
    let maxBytes: Int
    /// The prefix of the message being read, while it is incomplete (at most 5 bytes).
    private var prefix: [UInt8] = []
    /// Bytes of the current message still to come.
    private var remaining = 0

    init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    /// Where a message is.
    enum Event {
        /// Its prefix arrived, declaring this length (within the limit).
        case started(Int)
        /// Its last byte passed.
        case finished
    }

    /// Follows the messages through `buffer`; the declared length of the first one over the limit, if any. `observe`
    /// sees each message start and finish; when it returns false the scan stops there (the message is refused).
    mutating func oversizedLength(in buffer: ByteBuffer, observe: (Event) -> Bool = { _ in true }) -> Int? {
        var buffer = buffer
        while buffer.readableBytes > 0 {
            if remaining > 0 {
                let skipped = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                remaining -= skipped
                if remaining == 0, !observe(.finished) { return nil }
                continue
            }
            prefix.append(buffer.readInteger(as: UInt8.self) ?? 0)
            guard prefix.count == 5 else { continue }
            let length = prefix[1...].reduce(0) { $0 << 8 | Int($1) }
            prefix.removeAll(keepingCapacity: true)
            if length > maxBytes { return length }
            guard observe(.started(length)) else { return nil }
            remaining = length
            if length == 0, !observe(.finished) { return nil }
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
