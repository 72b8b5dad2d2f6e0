import Checkpoint
public import Foundation

/// Opens the ``BlobStore`` a checkpoint URI names, with messages that say which part of the URI is wrong.
public enum BlobStoreFactory {
    /// Opens a store.
    ///
    /// - Parameters:
    ///   - uri: `file:///absolute/path`, a bare absolute path, or `s3://bucket[/prefix]`.
    ///   - endpoint: S3 only: the endpoint URL; empty for `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, then AWS
    ///     itself (the variables boto3 reads, so workers find the same server).
    ///   - region: S3 only: the signing region; empty for `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`.
    ///   - credentials: S3 only: nil for `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    ///   - environment: where those variables are read (the process environment unless a test says otherwise).
    ///   - options: S3 only: timeouts, retries and limits.
    /// - Returns: a ``LocalBlobStore`` (its directory created if missing) or an ``S3BlobStore`` (nothing sent yet).
    /// - Throws: `invalidArgument` for a malformed URI, bucket, prefix, endpoint or region; `unauthenticated` when S3
    ///   credentials are missing; the file system's error when the directory cannot be created.
    public static func open(
        uri: String, endpoint: String = "", region: String = "", credentials: S3Credentials? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        options: S3BlobStore.Options = S3BlobStore.Options()
    ) throws(StorageError) -> any BlobStore {
        if uri.hasPrefix("/") {
            return try LocalBlobStore(root: uri)
        }
        if uri.hasPrefix("file://") {
            return try LocalBlobStore(root: localPath(fromFileURI: uri))
        }
        if uri.hasPrefix("s3://") {
            let (bucket, prefix) = try bucketAndPrefix(fromS3URI: uri)
            func setting(_ given: String, _ names: String...) -> String? {
                given.isEmpty ? names.lazy.compactMap { environment[$0] }.first { !$0.isEmpty } : given
            }
            var parsedEndpoint: S3Endpoint?
            if let url = setting(endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") {
                parsedEndpoint = try S3Endpoint(parsing: url)
            }
            // Not `credentials ?? ...`: `??` rethrows untyped errors.
            let signing: S3Credentials
            if let credentials {
                signing = credentials
            } else {
                signing = try S3Credentials.fromEnvironment(environment)
            }
            return try S3BlobStore(
                endpoint: parsedEndpoint,
                region: setting(region, "AWS_REGION", "AWS_DEFAULT_REGION") ?? "us-east-1",
                bucket: bucket, prefix: prefix,
                credentials: signing,
                options: options)
        }
        throw StorageError(.invalidArgument, "--checkpoint-store \(usage) (got \(uri.debugDescription))")
    }

    private static let usage = "must be file:///absolute/path, an absolute path, or s3://bucket[/prefix]"

    /// The path of `file:///absolute/path` (or `file://localhost/absolute/path`), percent-decoded.
    static func localPath(fromFileURI uri: String) throws(StorageError) -> String {
        var rest = uri.dropFirst("file://".count)
        if rest.hasPrefix("localhost/") { rest = rest.dropFirst("localhost".count) }
        guard rest.hasPrefix("/") else {
            throw StorageError(
                .invalidArgument,
                "--checkpoint-store \(uri.debugDescription) names a host or a relative path: a file URI must be "
                    + "file:///absolute/path (three slashes)")
        }
        guard let path = rest.removingPercentEncoding, !path.contains("\0") else {
            throw StorageError(.invalidArgument, "--checkpoint-store \(uri.debugDescription) has a malformed %-escape")
        }
        return path
    }

    /// The bucket and the prefix (possibly empty, without a trailing slash) of `s3://bucket[/prefix]`.
    static func bucketAndPrefix(fromS3URI uri: String) throws(StorageError) -> (String, String) {
        let rest = uri.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        guard !bucket.isEmpty else {
            throw StorageError(.invalidArgument, "--checkpoint-store \(uri.debugDescription) has no bucket: \(usage)")
        }
        try S3BucketName.validate(bucket)
        var prefix = rest.dropFirst(bucket.count + 1)
        if prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        guard prefix.isEmpty || (try? ObjectKey(String(prefix))) != nil else {
            throw StorageError(
                .invalidArgument,
                "the key prefix of --checkpoint-store \(uri.debugDescription) must be /-separated segments of "
                    + "[A-Za-z0-9._-], none empty, . or .. (got \(String(prefix).debugDescription))")
        }
        return (bucket, String(prefix))
    }
}
