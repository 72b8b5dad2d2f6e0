public import RuntimeCore

/// The error type of the storage adapters: the database, the data directory, blob stores.
public struct StorageError: CodedError {
    /// The category of the failure (usually `unavailable`: retrying or fixing the disk may help).
    public var code: ErrorCode
    /// What failed and what to do about it.
    public var message: String

    /// Creates an error.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
