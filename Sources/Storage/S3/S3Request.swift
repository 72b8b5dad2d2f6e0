/// One S3 API call, before signing: what ``S3Client`` sends.
struct S3Request: Sendable {
    /// The API operation (`PutObject`, `ListObjectsV2` ...), for error messages.
    var operation: String
    /// The HTTP method.
    var method: String
    /// The bucket; every request of ours addresses one.
    var bucket: String
    /// The object key within the bucket (store prefix included), or nil for a bucket-level request.
    var key: String?
    /// Query parameters, not encoded; a flag like `?uploads` has an empty value.
    var query: [(String, String)] = []
    /// Extra headers to send and sign (`content-md5`, `content-type`, ...).
    var headers: [(String, String)] = []
    /// The body.
    var body: [UInt8] = []
    /// Whether sending it twice does no harm, so it may be retried after a 5xx or a broken connection.
    var idempotent = true
    /// Error statuses handed back to the caller (e.g. 404 for a lookup) instead of thrown.
    var tolerated: Set<Int> = []

    /// The path, not encoded: `/bucket` or `/bucket/key`.
    var path: String {
        key.map { "/\(bucket)/\($0)" } ?? "/\(bucket)"
    }

    /// `s3://bucket/key` or `s3://bucket`, for messages.
    var resource: String {
        key.map { "s3://\(bucket)/\($0)" } ?? "s3://\(bucket)"
    }
}

/// What S3 answered.
struct S3Response: Sendable {
    /// The HTTP status.
    var status: Int
    /// The headers, names lowercased.
    var headers: [String: String]
    /// The body (empty for `HEAD`).
    var body: [UInt8]

    /// The parsed body.
    var document: S3XMLElement? { S3XMLElement.parse(body) }

    /// The S3 error this response carries, or nil for a success. A `HEAD` has no body, so its error code is
    /// made up from the status (`NotFound`, `Forbidden` ...).
    var error: S3ErrorDetails? {
        guard !(200..<300).contains(status) else { return nil }
        let document = document
        return S3ErrorDetails(
            status: status,
            code: document?["Code"] ?? S3ErrorDetails.codeForStatus(status),
            message: document?["Message"] ?? "")
    }
}
