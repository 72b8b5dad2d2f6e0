import GRPCCore
import GRPCNIOTransportHTTP2
import RuntimeCore
import Swarm

/// The no-op baseline of stream messages: the same number of bidirectional streams over the same connections, each
/// sending a message as soon as the previous one came back, to the benchmarks' `Stream` method, which answers each
/// message with its own bytes and does nothing else. What the server stack itself can carry.
enum EchoStreams {
    /// Round trips per second over `window`, after `warmUp`, with `streams` streams each sending `message`; and the
    /// coordinator's cost per round trip over the window, when `stats` can read its process.
    static func rate(
        _ connections: SwarmConnections, streams: Int, message: [UInt8], warmUp: Duration = .seconds(2),
        window: Duration, stats: () -> ProcessStats? = { nil }
    ) async throws -> (rate: Double, cost: MessageCost?) {
        let answered = SharedCounter()
        let stop = SharedCounter()
        let opened = SharedCounter()
        let tasks = (0..<streams).map { index in
            Task {
                let (rings, doorbell) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                doorbell.yield()
                let request = StreamingClientRequest(of: [UInt8].self, metadata: connections.metadata) { writer in
                    opened.add(1)
                    for await _ in rings {
                        if stop.value > 0 { return }
                        try await writer.write(message)
                    }
                }
                _ = try? await connections.client(index).bidirectionalStreaming(
                    request: request, descriptor: BenchService.stream, serializer: RawBytes(),
                    deserializer: RawBytes(), options: .defaults
                ) { response in
                    for try await _ in response.messages {
                        answered.add(1)
                        doorbell.yield()
                    }
                }
                doorbell.finish()
            }
        }
        defer { for task in tasks { task.cancel() } }
        let clock = ContinuousClock()
        let openBy = clock.now + .seconds(60)
        while opened.value < streams, clock.now < openBy {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: warmUp)
        let start = clock.now
        let before = answered.value
        let statsBefore = stats()
        try await Task.sleep(for: window)
        let count = answered.value - before
        let elapsed = clock.now - start
        let statsAfter = stats()
        // Each stream ends its requests once its answer in flight is back, and the server ends the stream.
        stop.add(1)
        await endGracefully(tasks)
        return (Double(count) / elapsed.seconds, MessageCost(from: statsBefore, to: statsAfter, messages: count))
    }
}

extension EchoStreams {
    /// A burst's times from its first call: to the first and to the last stream's answer.
    struct Burst {
        var firstAnswer: Duration
        var lastAnswer: Duration
    }

    /// The floor of a rendezvous of `count` workers on this stack: `count` no-op unary calls carrying `message`, all
    /// at once, each followed by a no-op stream that carries one message there and back (a registration, then the
    /// session's first heartbeat and its answer). Without `unary`, the streams only: the floor of `count` sessions
    /// coming back to a restarted coordinator. Returns the times from the first call to the first and to the last
    /// answer (each stream is then left to end with the server's status, which is not counted).
    static func burst(_ connections: SwarmConnections, count: Int, message: [UInt8], unary: Bool = true)
        async throws -> Burst
    {
        let clock = ContinuousClock()
        let start = clock.now
        let answers = Shared((first: ContinuousClock.Instant?.none, last: start))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    let client = connections.client(index)
                    if unary {
                        _ = try await client.unary(
                            request: ClientRequest(message: message, metadata: connections.metadata),
                            descriptor: BenchService.echo, serializer: RawBytes(), deserializer: RawBytes(),
                            options: .defaults
                        ) { try $0.message }
                    }
                    let request = StreamingClientRequest(of: [UInt8].self, metadata: connections.metadata) { writer in
                        try await writer.write(message)
                    }
                    try await client.bidirectionalStreaming(
                        request: request, descriptor: BenchService.stream, serializer: RawBytes(),
                        deserializer: RawBytes(), options: .defaults
                    ) { response in
                        // Timed to the first answer; the stream is then read to its end (not reset).
                        var answered = false
                        for try await _ in response.messages {
                            if answered { continue }
                            answered = true
                            let now = clock.now
                            answers.withLock {
                                $0.first = min($0.first ?? now, now)
                                $0.last = max($0.last, now)
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let (first, last) = answers.value
        return Burst(firstAnswer: (first ?? start) - start, lastAnswer: last - start)
    }
}

extension EchoStreams {
    /// The floor of the round trip of `streams` workers heartbeating every `interval`: as many no-op streams over the
    /// same connections, each sending `message` once per interval, paced by the ``HeartbeatPacer`` as the workers'
    /// heartbeats are. Returns the round trips (nanoseconds) of the messages sent in `window`, after `warmUp`, each
    /// counted whenever its answer comes (up to a second after the window), and how many streams opened.
    static func paced(
        _ connections: SwarmConnections, streams: Int, message: [UInt8], interval: Duration,
        warmUp: Duration = .seconds(3), window: Duration
    ) async throws -> (roundTrips: [Int64], opened: Int) {
        let clock = ContinuousClock()
        let samples = Shared<[Int64]>([])
        let opened = SharedCounter()
        // Whether a message is in the window is decided when it is sent.
        let measuring = Shared(false)
        let doorbells = (0..<streams).map { _ in
            AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        }
        let tasks = (0..<streams).map { index in
            Task {
                let sent = Shared<[(at: ContinuousClock.Instant, counted: Bool)]>([])
                let request = StreamingClientRequest(of: [UInt8].self, metadata: connections.metadata) { writer in
                    opened.add(1)
                    for await _ in doorbells[index].stream {
                        let counted = measuring.value
                        sent.withLock { $0.append((clock.now, counted)) }
                        try await writer.write(message)
                    }
                }
                _ = try? await connections.client(index).bidirectionalStreaming(
                    request: request, descriptor: BenchService.stream, serializer: RawBytes(),
                    deserializer: RawBytes(), options: .defaults
                ) { response in
                    for try await _ in response.messages {
                        let now = clock.now
                        guard let first = sent.withLock({ $0.isEmpty ? nil : $0.removeFirst() }), first.counted
                        else { continue }
                        let trip = (now - first.at).components
                        samples.withLock { $0.append(trip.seconds * 1_000_000_000 + trip.attoseconds / 1_000_000_000) }
                    }
                }
            }
        }
        let pacing = Task {
            await HeartbeatPacer.run(count: streams, interval: interval, until: .now + .seconds(86_400)) {
                doorbells[$0].continuation.yield()
            }
        }
        defer {
            pacing.cancel()
            for doorbell in doorbells { doorbell.continuation.finish() }
            for task in tasks { task.cancel() }
        }
        let openBy = clock.now + .seconds(60)
        while opened.value < streams, clock.now < openBy { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: warmUp)
        measuring.withLock { $0 = true }
        try await Task.sleep(for: window)
        measuring.withLock { $0 = false }
        pacing.cancel()
        // The window's last answers come back (a second is far beyond any round trip measured at 1 Hz), then the
        // streams end.
        try await Task.sleep(for: .seconds(1))
        for doorbell in doorbells { doorbell.continuation.finish() }
        await endGracefully(tasks)
        return (samples.value, opened.value)
    }
}
