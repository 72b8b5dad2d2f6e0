public import Hummingbird
public import RuntimeCore

extension ErrorCode {
    /// The HTTP status for this category.
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .failedPrecondition: .conflict
        case .resourceExhausted: .tooManyRequests
        case .aborted: .conflict
        case .deadlineExceeded: .gatewayTimeout
        case .unavailable: .serviceUnavailable
        case .unimplemented: .notImplemented
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        case .internal: .internalServerError
        }
    }

    /// The category an HTTP status maps back to (for errors Hummingbird raises itself, like an unknown route).
    init(httpStatus: HTTPResponse.Status) {
        switch httpStatus {
        case .notFound: self = .notFound
        case .methodNotAllowed: self = .notFound
        case .badRequest, .contentTooLarge, .unsupportedMediaType: self = .invalidArgument
        case .unauthorized: self = .unauthenticated
        case .forbidden: self = .permissionDenied
        case .tooManyRequests: self = .resourceExhausted
        case .serviceUnavailable: self = .unavailable
        default: self = httpStatus.code >= 500 ? .internal : .invalidArgument
        }
    }
}

/// The JSON body of every error response: `{"error": {"code": "...", "reason": "...", "message": "..."}}`, encoded by
/// ``JSONErrorMiddleware`` alone.
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var code: String
        var reason: String
        var message: String
    }

    var error: Detail
}
