public import RuntimeCore

/// The error type of the checkpoint catalog: what a save, report or load request did wrong, or why it cannot proceed.
public struct CheckpointError: CodedError, Equatable {
    /// The category of the failure.
    public var code: ErrorCode
    /// Why, for programs (declared right after `code`, where it fits in the padding: see ``CoreError`` on why error
    /// types stay small).
    public var reason: ErrorReason
    /// What went wrong and what to do next.
    public var message: String

    /// Creates an error; without a `reason`, the code's generic one.
    public init(_ code: ErrorCode, _ message: String, reason: ErrorReason? = nil) {
        self.code = code
        self.reason = reason ?? ErrorReason(generic: code)
        self.message = message
    }
}
