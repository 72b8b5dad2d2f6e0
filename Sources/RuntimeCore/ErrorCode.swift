/// The stable category of a failure, shared by every module's error type and mapped at the edges to a gRPC status
/// code and an HTTP status (see `docs/API.md`).
public enum ErrorCode: String, Sendable, Hashable, CaseIterable {
    /// The request is malformed: a field breaks a rule. Nothing changed.
    case invalidArgument = "invalid_argument"
    /// The named thing (worker, dataset, checkpoint ...) does not exist.
    case notFound = "not_found"
    /// The thing already exists with a different definition.
    case alreadyExists = "already_exists"
    /// The request is well formed but the system is not in a state that allows it (e.g. a stale membership epoch).
    case failedPrecondition = "failed_precondition"
    /// A limit was reached (rate, size, count).
    case resourceExhausted = "resource_exhausted"
    /// The operation was interrupted by a concurrent change (e.g. a barrier participant died).
    case aborted
    /// The operation did not complete in time.
    case deadlineExceeded = "deadline_exceeded"
    /// The coordinator cannot serve the request right now (shutting down, storage failing); retrying may succeed.
    case unavailable
    /// The feature is not implemented by this coordinator.
    case unimplemented
    /// Missing or wrong credentials.
    case unauthenticated
    /// Credentials are valid but do not allow this.
    case permissionDenied = "permission_denied"
    /// A bug or an unexpected failure inside the coordinator.
    case `internal`
}

/// An error that carries a stable ``ErrorCode`` and a message a person can act on.
///
/// Each module has one concrete error type conforming to this protocol; the coordinator's gRPC and HTTP edges map
/// any `CodedError` to a status without knowing which module raised it.
public protocol CodedError: Error, CustomStringConvertible {
    /// The category, which decides the gRPC status code and the HTTP status.
    var code: ErrorCode { get }
    /// What went wrong and, where possible, what to do next.
    var message: String { get }
}

extension CodedError {
    /// `code: message`, for logs.
    public var description: String { "\(code.rawValue): \(message)" }
}

/// The error type of the pure core (membership, validation, ...).
public struct CoreError: CodedError, Equatable {
    /// The category of the failure.
    public var code: ErrorCode
    /// A message that names the field or thing and the rule it broke.
    public var message: String

    /// Creates an error with a code and an actionable message.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A field broke a rule: "`field` must ... (got ...)".
    public static func invalid(_ field: String, _ rule: String, got value: String? = nil) -> CoreError {
        let suffix = value.map { " (got \($0))" } ?? ""
        return CoreError(.invalidArgument, "\(field) \(rule)\(suffix)")
    }
}

/// An error a client handles by program rather than by reading it: a code, an actionable message and a stable,
/// machine-readable reason (e.g. `TASK_FULL`), which the gRPC edge sends in the `dtr-reason` metadata.
///
/// A type of its own rather than a field of ``CoreError``: a larger `CoreError` made typed-throws initializers that
/// throw it crash at run time (Swift 6.3, seen in `ObjectKey.init` under parallel tests).
public struct ReasonedError: CodedError, Equatable {
    /// The category of the failure.
    public var code: ErrorCode
    /// What went wrong and what to do.
    public var message: String
    /// The stable reason, upper snake case.
    public var reason: String

    /// Creates an error with a code, an actionable message and a reason.
    public init(_ code: ErrorCode, _ message: String, reason: String) {
        self.code = code
        self.message = message
        self.reason = reason
    }
}
