import GRPCCore
import GRPCProtobuf
import RuntimeProto
import Synchronization

/// Raw bytes as gRPC messages: the benchmarks' baselines move bytes without any protobuf work.
struct RawBytes: MessageSerializer, MessageDeserializer {
    typealias Message = [UInt8]

    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// Calls parked until the gate opens: the same fan-out a barrier release does, minus the barrier.
final class Gate: Sendable {
    private let parked = Mutex<[CheckedContinuation<Void, Never>]>([])

    var count: Int { parked.withLock { $0.count } }

    func park() async {
        await withCheckedContinuation { continuation in parked.withLock { $0.append(continuation) } }
    }

    func open() {
        let waiters = parked.withLock { parked in
            defer { parked = [] }
            return parked
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// The benchmarks' no-op service, served next to the coordinator on the same server: `Wait` parks until `Open`,
/// `Echo` returns its request, `Stream` answers every message of a bidirectional stream with the same bytes,
/// `Session` answers every heartbeat of a `WorkerSession`-shaped stream with an acknowledgement at once (the session's
/// own messages, decoded and encoded as the coordinator's service does, with nothing done in between), and `Relay`
/// does what `Session` does in roughly the coordinator's shape of a session: a task of its own reads the heartbeats
/// and hands each acknowledgement to the handler, which writes it.
struct BenchService: RegistrableRPCService {
    static let wait = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Wait")
    static let open = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Open")
    static let echo = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Echo")
    static let stream = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Stream")
    static let session = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Session")
    static let relay = MethodDescriptor(fullyQualifiedService: "dtruntime.bench.Bench", method: "Relay")

    /// What `Session` answers a heartbeat with: an acknowledgement carrying a view of the size the coordinator's do.
    static func acknowledgement(of request: Dtruntime_V1_SessionRequest) -> Dtruntime_V1_SessionEvent {
        .with {
            $0.kind = .heartbeatAck
            $0.view = .with {
                $0.taskID = "swarm-heartbeat"
                $0.rank = 4_999
                $0.worldSize = 10_000
                $0.membershipEpoch = request.heartbeat.membershipEpoch
                $0.command = .continue
                $0.status = .healthy
            }
        }
    }

    let gate: Gate

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let gate = self.gate
        router.registerHandler(forMethod: Self.wait, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            for try await _ in request.messages {}
            await gate.park()
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
        router.registerHandler(forMethod: Self.open, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            for try await _ in request.messages {}
            gate.open()
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
        router.registerHandler(forMethod: Self.echo, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            var echoed: [UInt8] = []
            for try await message in request.messages { echoed = message }
            return StreamingServerResponse(single: ServerResponse(message: echoed))
        }
        router.registerHandler(forMethod: Self.stream, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            StreamingServerResponse { writer in
                for try await message in request.messages { try await writer.write(message) }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Self.session, deserializer: ProtobufDeserializer<Dtruntime_V1_SessionRequest>(),
            serializer: ProtobufSerializer<Dtruntime_V1_SessionEvent>()
        ) { request, _ in
            StreamingServerResponse { writer in
                for try await message in request.messages { try await writer.write(Self.acknowledgement(of: message)) }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Self.relay, deserializer: ProtobufDeserializer<Dtruntime_V1_SessionRequest>(),
            serializer: ProtobufSerializer<Dtruntime_V1_SessionEvent>()
        ) { request, _ in
            StreamingServerResponse { writer in
                // The coordinator's session shape without its engine: a task reads, the handler writes. As there, the
                // reader is not a child task (reading does not stop on cancellation), and the handler does not wait
                // for it.
                let (acknowledgements, relayed) = AsyncThrowingStream.makeStream(
                    of: Dtruntime_V1_SessionEvent.self, throwing: (any Error).self)
                let reader = Task {
                    do {
                        for try await message in request.messages { relayed.yield(Self.acknowledgement(of: message)) }
                        relayed.finish()
                    } catch {
                        relayed.finish(throwing: error)
                    }
                }
                defer { reader.cancel() }
                for try await acknowledgement in acknowledgements { try await writer.write(acknowledgement) }
                return [:]
            }
        }
    }
}
