public import Hummingbird
import NIOCore
import Synchronization

/// Refuses HTTP request bodies larger than `--http-max-body` with `413 Content Too Large` and a JSON error saying the
/// limit, before any route acts on them: a declared `Content-Length` over the limit is refused without reading a byte,
/// and a body without one (chunked) is cut off as soon as it passes the limit, whichever way a route reads it (so at
/// most the limit is ever buffered). The route never sees an over-limit body, so such a request changes nothing.
public struct BodyLimitMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    /// The default limit: 1 MiB, sixteen times the largest body the API accepts (a task with a 64 KiB config).
    public static let defaultMaxBytes = 1 << 20
    /// Largest request body accepted, in bytes.
    public let maxBytes: Int

    /// A middleware refusing bodies larger than `maxBytes`.
    public init(maxBytes: Int = Self.defaultMaxBytes) {
        self.maxBytes = max(1, maxBytes)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > maxBytes {
            throw tooLarge
        }
        let tripwire = Tripwire()
        var request = request
        request.body = RequestBody(
            asyncSequence: LimitedBody(base: request.body, maxBytes: maxBytes, tripwire: tripwire))
        var context = context
        // `request.decode` collects up to this many bytes (Hummingbird's default is 2 MiB).
        context.maxUploadSize = maxBytes
        do {
            return try await next(request, context)
        } catch {
            // Whatever the route made of the cut-off body (a decoding error, say), the answer is the limit.
            if tripwire.tripped.load(ordering: .sequentiallyConsistent) { throw tooLarge }
            throw error
        }
    }

    /// The 413 answer, naming the limit and the flag that sets it.
    var tooLarge: HTTPError {
        HTTPError(
            .contentTooLarge,
            message: "request body is larger than \(Self.describe(bytes: maxBytes)) (--http-max-body): send a smaller "
                + "body, or raise the coordinator's --http-max-body")
    }

    /// A size as people write it: `1 MiB`, `512 KiB`, `1000 bytes`.
    static func describe(bytes: Int) -> String {
        for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % scale == 0 {
            return "\(bytes / scale) \(unit)"
        }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}

/// Set once a body passed the limit.
private final class Tripwire: Sendable {
    let tripped = Atomic<Bool>(false)
}

/// A request body that throws once more than `maxBytes` have come through.
private struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let maxBytes: Int
    let tripwire: Tripwire

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        var remaining: Int
        let maxBytes: Int
        let tripwire: Tripwire

        mutating func next() async throws -> ByteBuffer? {
            guard let buffer = try await base.next() else { return nil }
            remaining -= buffer.readableBytes
            if remaining < 0 {
                tripwire.tripped.store(true, ordering: .sequentiallyConsistent)
                throw NIOTooManyBytesError(maxBytes: maxBytes)
            }
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), remaining: maxBytes, maxBytes: maxBytes, tripwire: tripwire)
    }
}
