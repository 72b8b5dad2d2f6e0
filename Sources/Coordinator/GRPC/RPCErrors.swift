public import Checkpoint
public import GRPCCore
public import RuntimeCore
public import Storage

extension ErrorCode {
    /// The gRPC status code for this category.
    public var rpcCode: RPCError.Code {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .aborted: .aborted
        case .deadlineExceeded: .deadlineExceeded
        case .unavailable: .unavailable
        case .unimplemented: .unimplemented
        case .unauthenticated: .unauthenticated
        case .permissionDenied: .permissionDenied
        case .internal: .internalError
        }
    }
}

extension RPCError.Code {
    /// The snake_case name metrics and logs use for the code, as for ``ErrorCode`` (`invalid_argument`).
    var snakeCaseName: String {
        switch self {
        case .cancelled: "cancelled"
        case .unknown: "unknown"
        case .invalidArgument: "invalid_argument"
        case .deadlineExceeded: "deadline_exceeded"
        case .notFound: "not_found"
        case .alreadyExists: "already_exists"
        case .permissionDenied: "permission_denied"
        case .resourceExhausted: "resource_exhausted"
        case .failedPrecondition: "failed_precondition"
        case .aborted: "aborted"
        case .outOfRange: "out_of_range"
        case .unimplemented: "unimplemented"
        case .internalError: "internal"
        case .unavailable: "unavailable"
        case .dataLoss: "data_loss"
        case .unauthenticated: "unauthenticated"
        default: "unknown"
        }
    }

    /// The generic reason of an error with this code and no reason of its own (one the gRPC layer made).
    var genericReason: ErrorReason {
        switch self {
        case .cancelled: .cancelled
        case .invalidArgument, .outOfRange: .invalidArgument
        case .deadlineExceeded: .deadlineExceeded
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .permissionDenied: .permissionDenied
        case .resourceExhausted: .resourceExhausted
        case .failedPrecondition: .failedPrecondition
        case .aborted: .aborted
        case .unimplemented: .unimplemented
        case .unavailable: .unavailable
        case .unauthenticated: .unauthenticated
        default: .internal
        }
    }
}

/// The metadata keys errors carry (see docs/API.md, "Errors").
enum ErrorMetadataKey {
    static let reason = "dtr-reason"
    static let membershipEpoch = "dtr-membership-epoch"
    static let missingRanks = "dtr-missing-ranks"
    static let missingWorkers = "dtr-missing-workers"
    static let retryAfterMs = "retry-after-ms"
    static let worldSize = "dtr-world-size"
}

extension Metadata {
    /// The metadata of an error: its reason, and each of its details under its own key.
    init(reason: ErrorReason, details: ErrorDetails) {
        self.init()
        addString(reason.rawValue, forKey: ErrorMetadataKey.reason)
        if let epoch = details.membershipEpoch {
            addString(String(epoch), forKey: ErrorMetadataKey.membershipEpoch)
        }
        if !details.missing.isEmpty {
            addString(
                details.missing.map { String($0.rank) }.joined(separator: ","), forKey: ErrorMetadataKey.missingRanks)
            addString(
                details.missing.map(\.worker.rawValue).joined(separator: ","), forKey: ErrorMetadataKey.missingWorkers)
        }
        if let wait = details.retryAfter {
            addString(String(Self.wholeMilliseconds(wait)), forKey: ErrorMetadataKey.retryAfterMs)
        }
        if let worldSize = details.worldSize {
            addString(String(worldSize), forKey: ErrorMetadataKey.worldSize)
        }
    }

    /// A wait in milliseconds, rounded up (waiting a little longer is always safe).
    static func wholeMilliseconds(_ duration: Duration) -> Int64 {
        Int64((duration.seconds * 1000).rounded(.up))
    }
}

// MARK: Errors as gRPC statuses

/// Every module's error converts to a status the same way: its code, its actionable message, and its reason and
/// details as metadata (`dtr-reason`, `dtr-membership-epoch` ...). grpc-swift applies it to whatever a handler or
/// interceptor throws.
extension RPCErrorConvertible where Self: CodedError {
    public var rpcErrorCode: RPCError.Code { code.rpcCode }
    public var rpcErrorMessage: String { message }
    public var rpcErrorMetadata: Metadata { Metadata(reason: reason, details: details) }
}

extension CoreError: RPCErrorConvertible {}
extension BarrierFailure: RPCErrorConvertible {}
extension CheckpointError: RPCErrorConvertible {}
extension StorageError: RPCErrorConvertible {}

extension RPCError {
    /// The status a call ends with when `error` ends it: the error's own code, message, reason and details, and for
    /// anything else (a cancellation, an error the gRPC layer made) a status with the generic reason of its code, so
    /// that every error a client sees carries a `dtr-reason`.
    init(mapping error: any Error) {
        switch error {
        case let error as RPCError:
            if error.code == .unknown, let cause = error.cause, !(cause is RPCError) {
                // What grpc-swift made of an error it could not convert (it keeps it as the cause).
                self.init(mapping: cause)
                return
            }
            self = error
            if metadata[stringValues: ErrorMetadataKey.reason].first(where: { _ in true }) == nil {
                metadata.addString(error.code.genericReason.rawValue, forKey: ErrorMetadataKey.reason)
            }
        case let error as any RPCErrorConvertible:
            self.init(error)
        case is CancellationError:
            self.init(
                code: .cancelled, message: "the call was cancelled",
                metadata: Metadata(reason: .cancelled, details: ErrorDetails()))
        default:
            self.init(
                code: .internalError, message: "internal error: \(error)",
                metadata: Metadata(reason: .internal, details: ErrorDetails()))
        }
    }

    /// The reason this status carries (`dtr-reason`).
    var reason: String? { metadata[stringValues: ErrorMetadataKey.reason].first(where: { _ in true }) }
}
