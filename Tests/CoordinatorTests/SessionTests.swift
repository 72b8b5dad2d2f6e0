import Coordinator
import GRPCCore
import RuntimeCore
import RuntimeProto
import Testing

@Suite("gRPC worker sessions (in-process)", .timeLimit(.minutes(3)))
struct SessionTests {
    @Test("heartbeats on the stream are acknowledged with the worker's view")
    func acknowledgements() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            try await withSession(client) { session in
                let ack = try await session.heartbeatAck("a")
                #expect(ack.view.rank == 0 && ack.view.worldSize == 1 && ack.view.membershipEpoch == 1)
                #expect(harness.engine.sessions.channel(of: try WorkerID("a")) != nil)
            }
        }
    }

    @Test("joins and deaths are pushed to the other members at once, not at their next heartbeat")
    func pushes() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            try await withSession(client) { session in
                _ = try await session.heartbeatAck("a")

                _ = try await client.registerWorker(registration("b"))
                let joined = try #require(try await session.next())
                #expect(joined.kind == .push)
                #expect(joined.view.worldSize == 2 && joined.view.membershipEpoch == 2)
                #expect(joined.view.reason == "b joined as rank 1")

                // b goes silent; a keeps heartbeating on its stream.
                var elapsed = Duration.zero
                try await harness.elapse(.milliseconds(5250)) {
                    elapsed += .milliseconds(250)
                    if elapsed.components.attoseconds == 0 { _ = try await session.heartbeatAck("a") }
                }
                var death = try #require(try await session.next())
                while death.kind != .push { death = try #require(try await session.next()) }
                #expect(death.view.worldSize == 1 && death.view.rank == 0 && death.view.membershipEpoch == 3)
                #expect(death.view.reason.hasPrefix("b declared dead after 5"))
            }
        }
    }

    @Test("a session of an unknown worker ends with NOT_FOUND")
    func unknownWorker() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let error = await #expect(throws: RPCError.self) {
                try await withSession(client) { session in _ = try await session.heartbeatAck("ghost") }
            }
            #expect(error?.code == .notFound)
        }
    }

    @Test("a worker forgotten while its session is open: its next heartbeat ends the stream with NOT_FOUND")
    func forgottenWorker() async throws {
        let harness = try Harness(config: MembershipConfig(departedRetention: .seconds(1)))
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            let error = await #expect(throws: RPCError.self) {
                try await withSession(client) { session in
                    _ = try await session.heartbeatAck("a")
                    _ = try await client.deregisterWorker(.with { $0.workerID = "a" })
                    try await harness.elapse(.seconds(2))
                    #expect(harness.engine.sessions.count == 1, "the stream stays open until it says something")
                    session.beat("a")
                    while try await session.next() != nil {}
                }
            }
            #expect(error?.code == .notFound)
            #expect(harness.engine.sessions.count == 0, "the ended stream is detached")
        }
    }

    @Test("a session must keep one worker id")
    func oneWorkerPerSession() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            _ = try await client.registerWorker(registration("b"))
            let error = await #expect(throws: RPCError.self) {
                try await withSession(client) { session in
                    _ = try await session.heartbeatAck("a")
                    _ = try await session.heartbeatAck("b")
                }
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("must stay the same on one session stream (it started as a)") == true)
        }
    }

    @Test("a newer session of the same worker replaces the older one, which ends UNAVAILABLE")
    func replaced() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            let error = await #expect(throws: RPCError.self) {
                try await withSession(client) { first in
                    _ = try await first.heartbeatAck("a")
                    try await withSession(client) { second in _ = try await second.heartbeatAck("a") }
                    while try await first.next() != nil {}
                }
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("replaced by a newer session stream") == true)
        }
    }

    @Test("closing all sessions (graceful shutdown) ends them UNAVAILABLE so workers reconnect")
    func shutdownClosesSessions() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            let error = await #expect(throws: RPCError.self) {
                try await withSession(client) { session in
                    _ = try await session.heartbeatAck("a")
                    harness.engine.sessions.closeAll()
                    while try await session.next() != nil {}
                }
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("shutting down") == true)
        }
    }
}
