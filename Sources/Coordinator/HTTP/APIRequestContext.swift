public import Foundation
public import Hummingbird
public import NIOCore

/// The request context of the HTTP API: Hummingbird's basic context with the API's JSON style (ISO 8601 dates,
/// sorted keys, unescaped slashes).
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's IP address (rate limits are per client).
    public var remoteIP: String?
    /// Largest body `request.decode` collects; ``BodyLimitMiddleware`` sets it to `--http-max-body`.
    public var maxUploadSize = BodyLimitMiddleware.defaultMaxBytes
    /// The connection: an event stream closes it when its client falls behind.
    public let channel: any Channel

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress
        channel = source.channel
    }

    public var responseEncoder: JSONEncoder { Self.encoder }

    /// The API's JSON encoder.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
