import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import NIOEmbedded
import NIOHTTP2
import RuntimeProto
import Testing

@testable import Coordinator

@Suite("gRPC message size limit")
struct MessageSizeTests {
    @Test("live: an oversized message is RESOURCE_EXHAUSTED naming the limit; the connection serves the next call")
    func live() async throws {
        let directory = TemporaryDirectory()
        var config = LiveLoopbackTests().config(directory)
        config.barrierMaxPayloadBytes = 1024  // messages up to 1 MiB + 1 KiB
        try await LiveLoopbackTests().withCoordinator(config) { runtime, ports in
            try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: ports.grpc), transportSecurity: .plaintext)
            ) { grpc in
                let client = Dtruntime_V1_Coordinator.Client(wrapping: grpc)
                var tooBig = registration("big")
                tooBig.host = String(repeating: "h", count: 2 << 20)
                let error = await #expect(throws: RPCError.self) { try await client.registerWorker(tooBig) }
                #expect(error?.code == .resourceExhausted)
                #expect(
                    error?.message.hasSuffix(
                        "is larger than this coordinator accepts (1049600 bytes: --barrier-max-payload + 1 MiB): send "
                            + "less, or raise the coordinator's --barrier-max-payload") == true,
                    "\(String(describing: error))")
                _ = try await client.registerWorker(registration("fits"))
            }
            #expect(await runtime.engine.workers().map(\.record.spec.id.rawValue) == ["fits"], "big changed nothing")
        }
    }

    @Test("live: a BarrierStream message has its own 2 MiB limit, below the transport's; the stream says what to do")
    func barrierStreamLimit() async throws {
        let directory = TemporaryDirectory()
        let config = LiveLoopbackTests().config(directory)  // the default 64 MiB payloads: messages up to 65 MiB
        try await LiveLoopbackTests().withCoordinator(config) { _, ports in
            try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: ports.grpc), transportSecurity: .plaintext)
            ) { grpc in
                let client = Dtruntime_V1_Coordinator.Client(wrapping: grpc)
                let registered = try await client.registerWorker(registration("w0"))
                let big = {
                    var big = barrierRequest(
                        "w0", name: "big", epoch: registered.view.membershipEpoch,
                        values: [Double](repeating: 1, count: 3 << 17))  // 3 MiB
                    big.workerSecret = registered.workerSecret
                    return big
                }()
                let error = await #expect(throws: RPCError.self) {
                    try await client.barrierStream(
                        requestProducer: { writer in
                            try await writer.write(.with { $0.calls = [.with { $0.arrival = big }] })
                        },
                        onResponse: { response in
                            for try await _ in response.messages {}
                        })
                }
                #expect(error?.code == .resourceExhausted)
                #expect(
                    error?.message.hasSuffix(
                        "(2097152 bytes: the limit of a BarrierStream message): send fewer arrivals per message, and "
                            + "large payloads as BarrierSync calls") == true,
                    "\(String(describing: error))")
                // The same arrival as a unary call is within the transport's limit: it is released (a world of one).
                let released = try await client.barrierSync(big)
                #expect(released.result.data.count == 3 << 20)
            }
        }
    }

    @Test("live: heartbeats have their own 64 KiB limit, on a session stream and unary; the worker keeps its session")
    func heartbeatLimit() async throws {
        let directory = TemporaryDirectory()
        let config = LiveLoopbackTests().config(directory)  // the default 64 MiB payloads: messages up to 65 MiB
        try await LiveLoopbackTests().withCoordinator(config) { _, ports in
            try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: ports.grpc), transportSecurity: .plaintext)
            ) { grpc in
                let client = Dtruntime_V1_Coordinator.Client(wrapping: grpc)
                let registered = try await client.registerWorker(registration("w0"))
                let own: Metadata = ["dtr-worker-secret": "\(registered.workerSecret)"]
                // 65 KiB of worker id: refused from the message's 5-byte prefix, before any of it is buffered.
                let big = heartbeat(String(repeating: "w", count: 65 << 10))
                let suffix =
                    "is larger than this coordinator accepts (65536 bytes: the limit of a heartbeat): a heartbeat "
                    + "carries at most 256 metrics: send fewer"
                let streamed = await #expect(throws: RPCError.self) {
                    try await client.workerSession(
                        metadata: own,
                        requestProducer: { try await $0.write(.with { $0.heartbeat = big }) },
                        onResponse: { for try await _ in $0.messages {} })
                }
                #expect(streamed?.code == .resourceExhausted && streamed?.message.hasSuffix(suffix) == true)
                let unary = await #expect(throws: RPCError.self) { try await client.heartbeat(big, metadata: own) }
                #expect(unary?.code == .resourceExhausted && unary?.message.hasSuffix(suffix) == true)
                // The largest valid heartbeat (256 metrics of 128-byte names) is within the limit.
                let metrics = Dictionary(
                    uniqueKeysWithValues: (0..<256).map { index in
                        let name = "m\(index)-"
                        return (name + String(repeating: "m", count: 128 - name.count), 1.0)
                    })
                let largest = heartbeat("w0", metrics: metrics)
                let bytes: [UInt8] = try largest.serializedBytes()
                #expect(bytes.count < 64 << 10)
                let reply = try await client.heartbeat(largest, metadata: own)
                #expect(reply.view.rank == 0)
            }
        }
    }

    @Test("the scanner follows message prefixes across frames, however they are split")
    func scanner() {
        func message(_ length: Int) -> [UInt8] {
            [
                0, UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF),
                UInt8(length & 0xFF),
            ]
                + [UInt8](repeating: 7, count: min(length, 64))
        }
        // Three messages within the limit, then one declaring 1 byte over it (its body need not arrive).
        let stream = message(0) + message(64) + message(3) + message(65)
        for cut in 0...stream.count {
            for second in cut...stream.count {
                var scanner = GRPCMessageScanner(maxBytes: 64)
                let frames = [stream[..<cut], stream[cut..<second], stream[second...]]
                var found: Int?
                for frame in frames where found == nil { found = scanner.oversizedLength(in: ByteBuffer(bytes: frame)) }
                #expect(found == 65, "cut at \(cut) and \(second)")
            }
        }
        var within = GRPCMessageScanner(maxBytes: 64)
        #expect(within.oversizedLength(in: ByteBuffer(bytes: message(64) + message(64))) == nil)
    }

    @Test("messages being received share one budget: one that would pass it is refused before it is buffered")
    func inboundBudget() throws {
        let budget = InboundBudget(limit: 1 << 20)
        func stream() -> EmbeddedChannel {
            EmbeddedChannel(handler: GRPCMessageSizeGuard(maxBytes: 4 << 20, limitSource: "test", budget: budget))
        }
        func data(prefix length: Int? = nil, body: Int) -> HTTP2Frame.FramePayload {
            var buffer = ByteBuffer()
            if let length {
                buffer.writeInteger(UInt8(0))
                buffer.writeInteger(UInt32(length))
            }
            buffer.writeRepeatingByte(7, count: body)
            return .data(.init(data: .byteBuffer(buffer)))
        }
        // A message of 600 KiB, half-sent: charged in full from its prefix.
        let first = stream()
        try first.writeInbound(data(prefix: 600 << 10, body: 1000))
        #expect(budget.inUse == 600 << 10)
        // Another of 600 KiB would pass 1 MiB: refused at once, retry later.
        let second = stream()
        try second.writeInbound(data(prefix: 600 << 10, body: 10))
        let refusal = try second.readOutbound(as: HTTP2Frame.FramePayload.self)
        guard case .headers(let trailers) = refusal else {
            Issue.record("no trailers: \(String(describing: refusal))")
            return
        }
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        #expect(trailers.headers.first(name: "dtr-reason") == "LIMIT_REACHED")
        #expect(trailers.headers.first(name: "retry-after-ms") == "200")
        let message = trailers.headers.first(name: "grpc-message") ?? ""
        #expect(message.contains("limit is 1048576 bytes across all calls"), "\(message)")
        #expect(budget.inUse == 600 << 10, "the refused message charged nothing")
        // The first message's last byte gives its charge back; so does a stream that ends half-way.
        try first.writeInbound(data(body: (600 << 10) - 1000))
        #expect(budget.inUse == 0)
        let third = stream()
        try third.writeInbound(data(prefix: 900 << 10, body: 5))
        #expect(budget.inUse == 900 << 10)
        _ = try third.finish(acceptAlreadyClosed: true)
        #expect(budget.inUse == 0)
    }

    @Test("one connection's messages being received have a share of the budget: it cannot starve the others")
    func inboundBudgetPerConnection() throws {
        let budget = InboundBudget(limit: 4 << 20, perConnection: 1 << 20)
        final class Connection {}
        let hog = Connection()
        let other = Connection()
        func stream(of connection: Connection) -> EmbeddedChannel {
            EmbeddedChannel(
                handler: GRPCMessageSizeGuard(
                    maxBytes: 4 << 20, limitSource: "test", budget: budget, connection: ObjectIdentifier(connection)))
        }
        func prefix(_ length: Int) -> HTTP2Frame.FramePayload {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(length))
            buffer.writeRepeatingByte(7, count: 100)
            return .data(.init(data: .byteBuffer(buffer)))
        }
        // The hog's first half-sent message of 600 KiB is charged; a second would pass its 1 MiB share: refused.
        let first = stream(of: hog)
        try first.writeInbound(prefix(600 << 10))
        let second = stream(of: hog)
        try second.writeInbound(prefix(600 << 10))
        guard case .headers(let trailers) = try second.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no trailers")
            return
        }
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        #expect(trailers.headers.first(name: "dtr-reason") == "LIMIT_REACHED")
        #expect(trailers.headers.first(name: "retry-after-ms") == "200")
        let message = GRPCMessageSizeGuard.message(
            refusing: 600 << 10, for: .connection(inUse: 600 << 10), budget: budget)
        #expect(trailers.headers.first(name: "grpc-message") == GRPCMessageSizeGuard.percentEncoded(message))
        #expect(
            message
                == "message of 614400 bytes refused: this connection is receiving 614400 bytes of messages at once "
                + "(the limit is 1048576 bytes per connection, --grpc-inbound-per-connection): try again shortly, "
                + "send large messages on fewer calls at once, or raise the coordinator's --grpc-inbound-per-connection"
        )
        #expect(budget.inUse(connection: ObjectIdentifier(hog)) == 600 << 10, "the refused message charged nothing")
        // Another connection's message of up to its own share is received meanwhile.
        let elsewhere = stream(of: other)
        try elsewhere.writeInbound(prefix(1 << 20))
        #expect(try elsewhere.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)
        #expect(budget.inUse == (600 << 10) + (1 << 20))
        // Once the hog's first call ends, its share is free again.
        _ = try first.finish(acceptAlreadyClosed: true)
        #expect(budget.inUse(connection: ObjectIdentifier(hog)) == 0)
        let again = stream(of: hog)
        try again.writeInbound(prefix(1 << 20))
        #expect(try again.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)
        // The total still bounds every connection together.
        let small = InboundBudget(limit: 1 << 20, perConnection: 1 << 20)
        #expect(small.reserve(600 << 10, connection: ObjectIdentifier(hog)) == nil)
        #expect(small.reserve(600 << 10, connection: ObjectIdentifier(other)) == .total(inUse: 600 << 10))
        small.release(600 << 10, connection: ObjectIdentifier(hog))
        #expect(small.inUse == 0 && small.inUse(connection: ObjectIdentifier(hog)) == 0)
    }

    @Test("once big messages were received and the budget drains, freed memory is trimmed, at most once an interval")
    func trimAfterDrain() async throws {
        let trimmer = MemoryTrimmer(delay: .zero, minimumInterval: .seconds(3600))
        let budget = InboundBudget(limit: 64 << 20, trimmer: trimmer)
        final class Connection {}
        let connection = Connection()
        let key = ObjectIdentifier(connection)
        // Small messages never ask for a trim.
        for _ in 0..<100 {
            #expect(budget.reserve(1 << 20, connection: key) == nil)
            budget.release(1 << 20, connection: key)
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(trimmer.trims == 0)
        // 20 MiB being received at once, then nothing: one trim, soon.
        #expect(budget.reserve(12 << 20, connection: key) == nil)
        #expect(budget.reserve(8 << 20, connection: key) == nil)
        budget.release(12 << 20, connection: key)
        try await Task.sleep(for: .milliseconds(200))
        #expect(trimmer.trims == 0, "8 MiB are still being received")
        budget.release(8 << 20, connection: key)
        let deadline = ContinuousClock.now + .seconds(10)
        while trimmer.trims == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(trimmer.trims == 1)
        // Another burst within the interval: its trim waits for the interval's end.
        #expect(budget.reserve(20 << 20, connection: key) == nil)
        budget.release(20 << 20, connection: key)
        try await Task.sleep(for: .milliseconds(200))
        #expect(trimmer.trims == 1)
        _ = connection
    }

    @Test("grpc-message is percent-encoded")
    func percentEncoding() {
        #expect(GRPCMessageSizeGuard.percentEncoded("100% of 2 MiB") == "100%25 of 2 MiB")
        #expect(GRPCMessageSizeGuard.percentEncoded("é\n") == "%C3%A9%0A")
    }
}
