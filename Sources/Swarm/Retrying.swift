public import GRPCCore

/// Runs a call the way the Python SDK does: a refusal by the coordinator's rate limit (`RESOURCE_EXHAUSTED` with
/// `retry-after-ms`) waits that long and tries again; `UNAVAILABLE` (the coordinator restarting, a connection being
/// made) backs off as the SDK does (``Backoff``); both only within `timeout`. Anything else is thrown at once.
///
/// Retries are counted in `recorder` (`rate_limited`, `unavailable_retries`), so a report shows what the limits cost.
public func retrying<Result: Sendable>(
    _ recorder: SwarmRecorder, timeout: Duration = .seconds(60), _ call: () async throws -> Result
) async throws -> Result {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var backoff = Backoff()
    while true {
        do {
            return try await call()
        } catch let error as RPCError {
            let wait: Duration
            switch error.code {
            case .resourceExhausted:
                guard let text = error.metadata[stringValues: "retry-after-ms"].first(where: { _ in true }),
                    let milliseconds = Int(text)
                else { throw error }
                recorder.count("rate_limited")
                // Spread the retries of many callers refused at once over a little more than the wait.
                wait = .milliseconds(milliseconds) + .milliseconds(Int.random(in: 0...max(1, milliseconds / 4)))
            case .unavailable:
                recorder.count("unavailable_retries")
                wait = backoff.next()
            default:
                throw error
            }
            guard clock.now + wait < deadline else { throw error }
            try await Task.sleep(for: wait)
        }
    }
}

extension RPCError {
    /// The coordinator's `dtr-reason` trailer (e.g. `TASK_FULL`), if it sent one.
    public var dtrReason: String? { metadata[stringValues: "dtr-reason"].first(where: { _ in true }) }
}

/// `"Method: code"`, the key a failed call is counted under in a ``SwarmRecorder``.
public func errorKey(_ method: String, _ error: any Error) -> String {
    if let error = error as? RPCError { return "\(method): \(error.code)" }
    if error is CancellationError { return "\(method): cancelled" }
    return "\(method): \(type(of: error))"
}
