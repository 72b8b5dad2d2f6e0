import Foundation
public import GRPCCore
import GRPCProtobuf
public import RuntimeProto
import Synchronization

/// One simulated worker: what a Python `Worker` does on the wire, without the process. It registers (with an
/// incarnation, as a process of the SDK does), keeps a `WorkerSession` stream on which it heartbeats with its step and
/// metrics, takes the views the coordinator acknowledges and pushes, and deregisters; it can also die (stop
/// heartbeating, with its stream left open as a hung process leaves it, or broken as a crashed one) and come back as a
/// new process.
///
/// Thread-safe: the session's two sides, the pacer that asks for heartbeats and the scenario all use it at once.
public final class SimulatedWorker: Sendable {
    /// The worker id.
    public let id: String
    /// The task it joins.
    public let task: String
    /// Which of the swarm's connections its calls use.
    public let connection: Int
    /// Its labels (the demo adds the reserved `dtr/demo` label).
    public let labels: [String: String]
    /// The world size its registration asks for when it creates the task (0: not said).
    public let maxWorldSize: Int32
    let recorder: SwarmRecorder

    private struct State {
        var incarnation = SimulatedWorker.newIncarnation()
        /// The secret its registration returned ("" before): every later call naming the worker carries it.
        var secret = ""
        var view = Dtruntime_V1_MembershipView()
        var registered = false
        var step: Int64 = 0
        var metrics: [String: Double] = [:]
        /// When the oldest heartbeat not acknowledged yet was sent. Not one entry per heartbeat: heartbeats that reach
        /// the coordinator while it is busy with this session's previous one are folded into one and acknowledged
        /// once, so matching acknowledgements to heartbeats one for one would, after the first fold, time every later
        /// heartbeat from the one before it (a round trip one interval too long). An acknowledgement answers every
        /// heartbeat sent before it; the round trip recorded is the oldest one's, the longest wait. Exact with one
        /// heartbeat in flight (the closed loop; 1 Hz with round trips under a second). With several in flight and
        /// answered one by one, the later ones go untimed, or one is timed from a later send (too short): matching
        /// them exactly needs the acknowledgement to name its heartbeat, which the protocol does not.
        var oldestUnacknowledged: ContinuousClock.Instant?
        /// The open session's request side: a heartbeat is sent for each element.
        var beats: AsyncStream<Void>.Continuation?
        /// Counts the sessions opened: a session ending clears ``beats`` only if no newer one installed its own.
        var sessionNumber = 0
        /// Heartbeats acknowledged on the latest session opened.
        var sessionAcknowledged = 0
        /// Set by ``endSession()``: a session that opens afterwards ends at once (until ``restart()``).
        var sessionsEnded = false
        /// Send the next heartbeat as soon as the previous one is acknowledged (the maximum-rate measurement).
        var closedLoop = false
        /// Hung: asked-for heartbeats are not sent (``hang()``).
        var silent = false
        var sawRejoin = false
        var sawSuspect = false
        var acknowledged = 0
        var lastSent: ContinuousClock.Instant?
        /// The longest time between two heartbeats leaving this worker.
        var longestSendGap = Duration.zero
    }

    private let state = Mutex(State())

    /// A worker that has not registered yet.
    public init(
        id: String, task: String, connection: Int, labels: [String: String] = [:], maxWorldSize: Int32 = 0,
        recorder: SwarmRecorder
    ) {
        self.id = id
        self.task = task
        self.connection = connection
        self.labels = labels
        self.maxWorldSize = maxWorldSize
        self.recorder = recorder
    }

    // MARK: State

    /// The latest view the coordinator sent (rank -1 before the registration).
    public var view: Dtruntime_V1_MembershipView { state.withLock { $0.view } }

    /// Whether the coordinator ever told this worker it is no longer a member (`COMMAND_REJOIN`) while it was
    /// heartbeating: a false death, unless the scenario killed it.
    public var sawRejoin: Bool { state.withLock { $0.sawRejoin } }

    /// Heartbeats acknowledged on session streams so far.
    public var acknowledged: Int { state.withLock { $0.acknowledged } }

    /// The latest session this worker opened (they are numbered from 1; 0 before the first) and how many of its
    /// heartbeats it had acknowledged: a worker is back on a restarted coordinator once a session opened after the
    /// kill had one (an acknowledgement of the old session read late, by a busy process, does not count).
    public var session: (number: Int, acknowledged: Int) {
        state.withLock { ($0.sessionNumber, $0.sessionAcknowledged) }
    }

    /// Whether its sessions were ended (``endSession()``): one that opens now ends at once.
    public var sessionsEnded: Bool { state.withLock { $0.sessionsEnded } }

    /// Whether a heartbeat this worker sent on its session was sent after the last acknowledgement it received (an
    /// acknowledgement answers every heartbeat sent before it).
    public var awaitsAcknowledgement: Bool { state.withLock { $0.oldestUnacknowledged != nil } }

    /// When the last heartbeat left on a session stream.
    public var lastSent: ContinuousClock.Instant? { state.withLock { $0.lastSent } }

    /// The longest time between two consecutive heartbeats this worker handed to its session streams: what the
    /// coordinator cannot hear, whatever it does. A suspicion of a worker whose gaps stayed under the suspect timeout
    /// is the coordinator's doing (or the client's on the way out: its lag); one above it is the client's.
    public var longestSendGap: Duration { state.withLock { $0.longestSendGap } }

    /// Whether a view ever said the coordinator suspected this worker.
    public var sawSuspect: Bool { state.withLock { $0.sawSuspect } }

    /// Its process's name, new for every process (``restart()``).
    public var incarnation: String { state.withLock { $0.incarnation } }

    /// The step and metrics its heartbeats carry.
    public func progress(step: Int64, metrics: [String: Double]) {
        state.withLock {
            $0.step = step
            $0.metrics = metrics
        }
    }

    /// The step its heartbeats carry.
    public var step: Int64 { state.withLock { $0.step } }

    /// The secret its registration returned ("" before the first registration).
    public var secret: String { state.withLock { $0.secret } }

    /// Takes the secret of a worker registered elsewhere (a bench that wrote the coordinator's state itself): the
    /// simulated worker then acts as that one.
    public func adopt(secret: String) {
        state.withLock { $0.secret = secret }
    }

    /// The metadata of a call that names this worker: the swarm's (its token) and the worker's secret.
    public func metadata(_ connections: SwarmConnections) -> Metadata {
        var metadata = connections.metadata
        let secret = state.withLock { $0.secret }
        if !secret.isEmpty { metadata.addString(secret, forKey: "dtr-worker-secret") }
        return metadata
    }

    /// Forgets the past process: a new incarnation, no view (what a restarted process starts with). The secret is
    /// kept, as a supervisor that restarts the process and hands it the old one's secret would: the restart proves
    /// itself and replaces the old process at once instead of waiting for the dead timeout.
    public func restart() {
        state.withLock {
            $0.incarnation = Self.newIncarnation()
            $0.view = Dtruntime_V1_MembershipView()
            $0.registered = false
            $0.silent = false
            $0.sessionsEnded = false
            $0.sawRejoin = false
            $0.sawSuspect = false
        }
    }

    static func newIncarnation() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }

    // MARK: Unary calls

    /// Registers (retrying through rate limits and restarts, as the SDK does); returns the reply.
    ///
    /// A registration refused with `WORKER_ID_IN_USE` (its id is a member that was heard from lately: e.g. this very
    /// registration, carried out but its reply lost with its connection) is tried again once the member has been silent
    /// for the suspect timeout, as the SDK's `Worker` does: for as long as the first refusal's `retry-after-ms` and
    /// 2 s more. `timeout` bounds the whole registration, its retries and waits for the id included.
    ///
    /// - Throws: the call's `RPCError` (a full task is `RESOURCE_EXHAUSTED` with `dtr-reason: TASK_FULL`).
    @discardableResult
    public func register(_ connections: SwarmConnections, timeout: Duration = .seconds(60)) async throws
        -> Dtruntime_V1_RegisterWorkerResponse
    {
        let request = Dtruntime_V1_RegisterWorkerRequest.with {
            $0.workerID = id
            $0.host = "127.0.0.1"
            $0.port = Int32(20_000 + connection % 40_000)
            $0.taskID = task
            $0.labels = labels
            $0.incarnation = incarnation
            $0.taskMaxWorldSize = maxWorldSize
            $0.taskMinWorldSize = maxWorldSize
        }
        let reply = try await registering(request, connections, timeout: timeout)
        state.withLock {
            $0.secret = reply.workerSecret
            $0.view = reply.view
            $0.registered = true
        }
        recorder.received(received(reply.view, kind: .reply))
        return reply
    }

    /// The registration's reply, waiting for the id as ``register(_:timeout:)`` says.
    private func registering(
        _ request: Dtruntime_V1_RegisterWorkerRequest, _ connections: SwarmConnections, timeout: Duration
    ) async throws -> Dtruntime_V1_RegisterWorkerResponse {
        let stub = connections.stub(connection)
        let clock = ContinuousClock()
        let end = clock.now + timeout
        var idDeadline: ContinuousClock.Instant?
        while true {
            do {
                return try await retrying(recorder, timeout: end - clock.now) {
                    try await stub.registerWorker(request, metadata: self.metadata(connections))
                }
            } catch let error as RPCError where error.dtrReason == "WORKER_ID_IN_USE" {
                // As the SDK's `_wait_for_id`: waits of the coordinator's word (a second without it), until its word
                // and 2 s more have passed since the first refusal.
                let retryAfter =
                    error.metadata[stringValues: "retry-after-ms"].first(where: { _ in true }).flatMap { Int($0) }
                    .map { Duration.milliseconds($0) }
                let deadline = idDeadline ?? clock.now + (retryAfter ?? .zero) + .seconds(2)
                idDeadline = deadline
                let wait = min(max(retryAfter ?? .seconds(1), .milliseconds(100)), .seconds(5))
                guard clock.now + wait <= min(deadline, end) else { throw error }
                recorder.count("id_in_use_waits")
                try await Task.sleep(for: wait)
            }
        }
    }

    /// One unary `Heartbeat` (what the SDK sends when it cannot keep a stream).
    public func heartbeatOnce(_ connections: SwarmConnections) async throws {
        let request = heartbeatRequest()
        let stub = connections.stub(connection)
        let reply = try await retrying(recorder) {
            try await stub.heartbeat(request, metadata: self.metadata(connections))
        }
        apply(reply.view, kind: .reply)
    }

    /// Leaves the task (`failed`: it leaves because it failed).
    public func deregister(
        _ connections: SwarmConnections, reason: String = "simulated worker closed", failed: Bool = false
    )
        async throws
    {
        let request = Dtruntime_V1_DeregisterWorkerRequest.with {
            $0.workerID = id
            $0.reason = reason
            $0.failed = failed
        }
        let stub = connections.stub(connection)
        _ = try await retrying(recorder) {
            try await stub.deregisterWorker(request, metadata: self.metadata(connections))
        }
        state.withLock { $0.registered = false }
    }

    // MARK: The session stream

    /// Keeps this worker's `WorkerSession` open: one heartbeat for each ``beat()``, every acknowledgement and push
    /// taken as the worker's view. Returns when the coordinator ends the stream (or throws its error), and at once,
    /// opening nothing, after ``endSession()``; cancelling the calling task breaks the stream, as a crashed process
    /// would.
    ///
    /// - Parameter method: the method the stream calls: another one with the session's messages (a benchmark's
    ///   floor) instead of the coordinator's `WorkerSession`.
    public func runSession(
        _ connections: SwarmConnections,
        method: MethodDescriptor = Dtruntime_V1_Coordinator.Method.WorkerSession.descriptor
    ) async throws {
        let (beats, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(4))
        let opened = state.withLock { state -> Int? in
            guard !state.sessionsEnded else { return nil }
            state.beats?.finish()
            state.beats = continuation
            state.oldestUnacknowledged = nil
            state.sessionNumber += 1
            state.sessionAcknowledged = 0
            // As the SDK: a heartbeat at once, so the coordinator attaches the stream without waiting an interval.
            if !state.silent { continuation.yield() }
            return state.sessionNumber
        }
        guard let opened else { return }
        defer {
            continuation.finish()
            state.withLock { if $0.sessionNumber == opened { $0.beats = nil } }
        }
        let request = StreamingClientRequest(of: Dtruntime_V1_SessionRequest.self, metadata: metadata(connections)) {
            writer in
            for await _ in beats {
                try await writer.write(.with { $0.heartbeat = self.heartbeatRequest(noting: true) })
            }
        }
        // What the generated stub's `workerSession` does, with the method chosen.
        try await connections.client(connection).bidirectionalStreaming(
            request: request, descriptor: method, serializer: ProtobufSerializer<Dtruntime_V1_SessionRequest>(),
            deserializer: ProtobufDeserializer<Dtruntime_V1_SessionEvent>(), options: .defaults
        ) { response in
            for try await event in response.messages { self.take(event) }
        }
    }

    /// Ends the open session's requests, as a process closing its stream does: the coordinator then ends the stream
    /// and ``runSession(_:method:)`` returns. A session opened afterwards (one reopening at this very moment) returns
    /// at once, until ``restart()``; a ``SwarmSessions`` stops reopening it. (Cancelling the task that runs the session
    /// instead breaks the stream, as a crash does.)
    public func endSession() {
        state.withLock { state in
            state.sessionsEnded = true
            return state.beats
        }?.finish()
    }

    /// Asks the open session to send a heartbeat now (nothing happens without one, or while hung).
    public func beat() {
        state.withLock { $0.silent ? nil : $0.beats }?.yield()
    }

    /// Whether a session stream is open.
    public var hasSession: Bool { state.withLock { $0.beats != nil } }

    /// Sends each heartbeat as soon as the previous one is acknowledged (true), or only on ``beat()`` (false).
    public func closedLoop(_ on: Bool) {
        let beats = state.withLock { state in
            state.closedLoop = on
            return state.beats
        }
        if on { beats?.yield() }
    }

    /// Stops heartbeating with the stream left open, as a hung process does, until ``restart()``.
    public func hang() {
        state.withLock {
            $0.closedLoop = false
            $0.silent = true
        }
    }

    /// Whether the worker is hung.
    public var isSilent: Bool { state.withLock { $0.silent } }

    // MARK: Internals

    private func heartbeatRequest(noting sent: Bool = false) -> Dtruntime_V1_HeartbeatRequest {
        state.withLock { state in
            if sent {
                let now = ContinuousClock.now
                if let last = state.lastSent { state.longestSendGap = max(state.longestSendGap, now - last) }
                state.lastSent = now
                if state.oldestUnacknowledged == nil { state.oldestUnacknowledged = now }
            }
            return .with {
                $0.workerID = id
                $0.membershipEpoch = state.view.membershipEpoch
                $0.step = state.step
                $0.metrics = state.metrics
            }
        }
    }

    private func take(_ event: Dtruntime_V1_SessionEvent) {
        let now = ContinuousClock.now
        if event.kind == .heartbeatAck {
            let (sent, again) = state.withLock { state -> (ContinuousClock.Instant?, AsyncStream<Void>.Continuation?) in
                let sent = state.oldestUnacknowledged
                state.oldestUnacknowledged = nil
                state.acknowledged += 1
                state.sessionAcknowledged += 1
                return (sent, state.closedLoop ? state.beats : nil)
            }
            if let sent { recorder.roundTrip(now - sent) }
            again?.yield()
        }
        apply(event.view, kind: event.kind == .push ? .push : .ack, at: now)
    }

    /// Takes a view as the SDK does: views of one task only move forward (a reply that crossed a push is older).
    private func apply(
        _ view: Dtruntime_V1_MembershipView, kind: SwarmRecorder.Kind, at: ContinuousClock.Instant = .now
    ) {
        let taken = state.withLock { state -> Bool in
            if view.command == .rejoin { state.sawRejoin = true }
            if view.status == .suspect { state.sawSuspect = true }
            guard view.taskID != state.view.taskID || view.membershipEpoch >= state.view.membershipEpoch else {
                return false
            }
            state.view = view
            return true
        }
        if view.command == .rejoin { recorder.count("rejoin_commands") }
        if taken { recorder.received(received(view, kind: kind, at: at)) }
    }

    private func received(
        _ view: Dtruntime_V1_MembershipView, kind: SwarmRecorder.Kind, at: ContinuousClock.Instant = .now
    )
        -> SwarmRecorder.Received
    {
        SwarmRecorder.Received(
            worker: id, at: at, kind: kind, rank: view.rank, worldSize: view.worldSize, epoch: view.membershipEpoch,
            reason: view.reason)
    }
}
