public import GRPCCore
public import RuntimeCore

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

/// Runs a handler and turns whatever it throws into an `RPCError` with the right status code and the error's
/// actionable message (instead of gRPC's opaque UNKNOWN).
///
/// Also records the call's duration and outcome in `metrics` under `method` (nil for streams, whose duration is their
/// lifetime, not a latency).
func withRPCErrors<T: Sendable>(
    _ method: String, _ metrics: CoordinatorMetrics?, _ body: () async throws -> T
) async throws -> T {
    let started = ContinuousClock.now
    do {
        let result = try await mapRPCErrors(body)
        metrics?.recordRPC(method, duration: ContinuousClock.now - started, error: nil)
        return result
    } catch let error as RPCError {
        metrics?.recordRPC(method, duration: ContinuousClock.now - started, error: "\(error.code)")
        throw error
    }
}

private func mapRPCErrors<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw RPCError(mapping: error)
    }
}

extension RPCError {
    /// The status a handler ends with when it throws `error`: the error's own code and actionable message (instead of
    /// gRPC's opaque UNKNOWN), and for a failed barrier who is missing, machine-readable too, so clients can raise
    /// typed errors carrying it.
    init(mapping error: any Error) {
        switch error {
        case let error as RPCError:
            self = error
        case let failure as BarrierFailure:
            var metadata: Metadata = [:]
            if !failure.missing.isEmpty {
                metadata.addString(
                    failure.missing.map { String($0.rank) }.joined(separator: ","), forKey: "dtr-missing-ranks")
                metadata.addString(
                    failure.missing.map(\.worker.rawValue).joined(separator: ","), forKey: "dtr-missing-workers")
            }
            self.init(code: failure.code.rpcCode, message: failure.message, metadata: metadata)
        case let error as ReasonedError:
            var metadata: Metadata = [:]
            metadata.addString(error.reason, forKey: "dtr-reason")
            self.init(code: error.code.rpcCode, message: error.message, metadata: metadata)
        case let error as any CodedError:
            self.init(code: error.code.rpcCode, message: error.message)
        case is CancellationError:
            self.init(code: .cancelled, message: "the call was cancelled")
        default:
            self.init(code: .internalError, message: "internal error: \(error)")
        }
    }
}
