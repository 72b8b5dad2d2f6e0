public import RuntimeCore

/// The error type of the checkpoint catalog: what a save, report or load request did wrong, or why it cannot proceed.
public struct CheckpointError: CodedError, Equatable {
    /// The category of the failure.
    public var code: ErrorCode
    /// What went wrong and what to do next.
    public var message: String

    /// Creates an error.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
