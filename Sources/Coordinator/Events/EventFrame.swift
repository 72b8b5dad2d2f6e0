import Foundation
import NIOCore
import Synchronization

/// The kinds of events `GET /api/events` sends (docs/API.md lists their data).
public enum EventType: String, Sendable, CaseIterable {
    /// First on every connection, without an id: the coordinator run and the newest event id.
    case hello
    /// The client's `since` is too old (or from another run): reload `GET /api/dashboard`.
    case reset
    /// A worker joined, left, died, became suspect, recovered, or reported metrics.
    case worker
    /// A task's record changed.
    case task
    /// A dataset epoch's progress.
    case datasetProgress = "dataset_progress"
    /// A barrier generation was released, aborted or timed out.
    case barrier
    /// A checkpoint was committed or aborted.
    case checkpoint
    /// A log entry at `info` or above.
    case log
}

/// One event as it goes on the wire: `id: <n>\nevent: <type>\ndata: <JSON>\n\n`.
///
/// Its body is built and encoded lazily, once, by the first client that writes it (or never, if no client does):
/// the engine only hands over values, so publishing costs it no JSON encoding.
final class EventFrame: Sendable {
    /// The event's id (0 for `hello` and `reset`, which carry none).
    let id: UInt64
    /// The event's type.
    let type: EventType
    private let body: @Sendable () -> any Encodable
    private let encoded = Mutex<ByteBuffer?>(nil)

    /// A frame whose data is `body()` encoded as JSON.
    init(id: UInt64, type: EventType, body: @escaping @Sendable () -> any Encodable) {
        self.id = id
        self.type = type
        self.body = body
    }

    /// The frame's bytes, encoded on first use.
    var bytes: ByteBuffer {
        encoded.withLock { cached in
            if let cached { return cached }
            let bytes = Self.render(id: id, type: type, data: Self.json(body()))
            cached = bytes
            return bytes
        }
    }

    /// One event in the wire format; `id` 0 is left out.
    static func render(id: UInt64, type: EventType, data: Data) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(data.count + 40)
        if id > 0 { buffer.writeString("id: \(id)\n") }
        buffer.writeString("event: \(type.rawValue)\ndata: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }

    /// `value` as one line of JSON in the API's style (the encoder escapes newlines inside strings).
    static func json(_ value: any Encodable) -> Data {
        (try? APIRequestContext.encoder.encode(value))
            ?? Data(#"{"error":{"code":"internal","message":"this event could not be encoded"}}"#.utf8)
    }
}
