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

/// An error that carries a stable ``ErrorCode``, a stable ``ErrorReason`` a program can branch on, the details that
/// go with the reason, and a message a person can act on.
///
/// Each module has one concrete error type conforming to this protocol; the coordinator's gRPC and HTTP edges map
/// any `CodedError` to a status, `dtr-*` metadata and a JSON body without knowing which module raised it.
public protocol CodedError: Error, CustomStringConvertible {
    /// The category, which decides the gRPC status code and the HTTP status.
    var code: ErrorCode { get }
    /// What went wrong and, where possible, what to do next.
    var message: String { get }
    /// Why, for programs (default: the code's generic reason).
    var reason: ErrorReason { get }
    /// What a program needs to act on the reason (default: nothing).
    var details: ErrorDetails { get }
}

extension CodedError {
    /// `code: message`, for logs.
    public var description: String { "\(code.rawValue): \(message)" }

    /// The code's generic reason: no more specific reason applies.
    public var reason: ErrorReason { ErrorReason(generic: code) }

    /// No details.
    public var details: ErrorDetails { ErrorDetails() }
}

/// The error type of the pure core (membership, validation, ...).
///
/// Its message and details sit behind one reference, so a `CoreError` is two words: a larger `CoreError` (three words
/// plus an optional string) made typed-throws initializers that throw it crash at run time (Swift 6.3, seen in
/// `ObjectKey.init` under parallel tests). `ErrorLayoutTests` holds it to that size.
public struct CoreError: CodedError, Equatable {
    /// The category of the failure.
    public var code: ErrorCode
    /// Why, for programs.
    public var reason: ErrorReason
    private var storage: Storage

    /// A message that names the field or thing and the rule it broke.
    public var message: String {
        get { storage.message }
        set { storage = Storage(message: newValue, details: storage.details) }
    }

    /// What goes with the reason (the current membership epoch, a retry-after ...).
    public var details: ErrorDetails {
        get { storage.details }
        set { storage = Storage(message: storage.message, details: newValue) }
    }

    /// Creates an error with a code, an actionable message and, when a program should tell it apart from others of
    /// its code, a specific reason (else the code's generic one) and its details.
    public init(
        _ code: ErrorCode, _ message: String, reason: ErrorReason? = nil, details: ErrorDetails = ErrorDetails()
    ) {
        self.code = code
        self.reason = reason ?? ErrorReason(generic: code)
        self.storage = Storage(message: message, details: details)
    }

    /// A field broke a rule: "`field` must ... (got ...)".
    public static func invalid(_ field: String, _ rule: String, got value: String? = nil) -> CoreError {
        let suffix = value.map { " (got \($0))" } ?? ""
        return CoreError(.invalidArgument, "\(field) \(rule)\(suffix)")
    }

    public static func == (a: CoreError, b: CoreError) -> Bool {
        a.code == b.code && a.reason == b.reason && a.message == b.message && a.details == b.details
    }

    /// Immutable: a changed message or details get a new one, so copies never share a change.
    private final class Storage: Sendable {
        let message: String
        let details: ErrorDetails

        init(message: String, details: ErrorDetails) {
            self.message = message
            self.details = details
        }
    }
}
