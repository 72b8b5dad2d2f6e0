/// An S3 error response (`<Error><Code>NoSuchBucket</Code><Message>...</Message></Error>`) and the ``StorageError``
/// it becomes: the mapping from S3's codes to ours, with messages that say what to fix.
struct S3ErrorDetails: Sendable, Equatable {
    /// The HTTP status.
    var status: Int
    /// S3's error code, e.g. `NoSuchKey`, `SignatureDoesNotMatch`.
    var code: String
    /// S3's message.
    var message: String

    /// Where a request went and as whom, to name in messages.
    struct Context: Sendable {
        var endpoint: S3Endpoint
        var accessKeyID: String
        var operation: String
        var bucket: String
        var resource: String
        var attempts: Int = 1
    }

    /// A code for a response without a body (`HEAD`).
    static func codeForStatus(_ status: Int) -> String {
        switch status {
        case 400: "BadRequest"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 409: "Conflict"
        case 412: "PreconditionFailed"
        case 500: "InternalError"
        case 501: "NotImplemented"
        case 503: "ServiceUnavailable"
        default: "HTTP\(status)"
        }
    }

    /// Whether trying again later may succeed: server errors and throttling.
    var isRetryable: Bool {
        status >= 500 || status == 429 || ["SlowDown", "RequestTimeout", "InternalError"].contains(code)
    }

    /// `Code: message` (or just the code), as quoted in our messages.
    var summary: String {
        message.isEmpty ? code : "\(code): \(message)"
    }

    /// The error a caller sees.
    func storageError(_ context: Context) -> StorageError {
        let endpoint = context.endpoint.url
        switch code {
        case "InvalidAccessKeyId":
            return StorageError(
                .unauthenticated,
                "S3 at \(endpoint) does not know access key \(context.accessKeyID) (\(summary)): "
                    + "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        case "SignatureDoesNotMatch":
            return StorageError(
                .unauthenticated,
                "S3 at \(endpoint) rejected the signature of access key \(context.accessKeyID) (\(summary)): "
                    + "the secret does not match the key; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            return StorageError(
                .unauthenticated,
                "S3 at \(endpoint) rejected the session token (\(summary)): refresh AWS_SESSION_TOKEN "
                    + "(with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        case "AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden":
            return StorageError(
                .permissionDenied,
                "S3 at \(endpoint) denied \(context.operation) on \(context.resource) to access key "
                    + "\(context.accessKeyID) (\(summary)): grant it read, write, list and delete on bucket "
                    + "\(context.bucket)")
        case "NoSuchBucket":
            return StorageError(
                .notFound,
                "bucket \(context.bucket) does not exist at \(endpoint): create it, or fix the bucket in "
                    + "--checkpoint-store")
        case "NoSuchKey", "NotFound":
            return StorageError(.notFound, "no object \(context.resource) at \(endpoint)")
        case "RequestTimeTooSkewed":
            return StorageError(
                .failedPrecondition,
                "S3 at \(endpoint) refused \(context.operation) because this machine's clock is off (\(summary)): "
                    + "synchronize the clock (NTP)")
        case "InvalidBucketName":
            return StorageError(
                .invalidArgument, "S3 at \(endpoint) rejected bucket name \(context.bucket) (\(summary))")
        case "EntityTooLarge", "QuotaExceeded", "TooManyBuckets":
            return StorageError(
                .resourceExhausted, "S3 at \(endpoint) refused \(context.operation) on \(context.resource): \(summary)")
        case "NotImplemented":
            return StorageError(
                .unimplemented, "S3 at \(endpoint) does not implement \(context.operation) (\(summary))")
        default:
            if isRetryable {
                let tries = context.attempts == 1 ? "" : " after \(context.attempts) attempts"
                return StorageError(
                    .unavailable,
                    "S3 at \(endpoint) failed \(context.operation) on \(context.resource)\(tries) "
                        + "(HTTP \(status) \(summary)): retry later or check the S3 server")
            }
            return StorageError(
                .failedPrecondition,
                "S3 at \(endpoint) refused \(context.operation) on \(context.resource) (HTTP \(status) \(summary))")
        }
    }
}
