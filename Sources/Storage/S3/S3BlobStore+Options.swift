extension S3BlobStore {
    /// Timeouts, retries and limits of an S3 store. The defaults suit a coordinator: a few quick retries, then a
    /// clear error, rather than a long hang.
    public struct Options: Sendable {
        /// Attempts per idempotent request (first try included) before a 5xx, throttling or a broken connection is
        /// reported.
        public var maxAttempts: Int
        /// The delay before the first retry; each further retry doubles it (with jitter).
        public var retryBaseDelay: Duration
        /// How long one attempt may take, connection included.
        public var requestTimeout: Duration
        /// The largest object ``S3BlobStore/get(_:)`` reads (manifests are small; this guards the coordinator's
        /// memory against a wrong key naming a huge part).
        public var maxResponseBytes: Int
        /// Keys per `ListObjectsV2` page (S3's maximum is 1000).
        public var listPageSize: Int

        /// Creates options; the defaults are 4 attempts from 100 ms, 30 s per attempt, 256 MiB, 1000 keys per page.
        public init(
            maxAttempts: Int = 4, retryBaseDelay: Duration = .milliseconds(100),
            requestTimeout: Duration = .seconds(30),
            maxResponseBytes: Int = 256 << 20, listPageSize: Int = 1000
        ) {
            self.maxAttempts = max(1, maxAttempts)
            self.retryBaseDelay = retryBaseDelay
            self.requestTimeout = requestTimeout
            self.maxResponseBytes = maxResponseBytes
            self.listPageSize = min(max(1, listPageSize), 1000)
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds, for NIO's `TimeAmount` and arithmetic on backoffs.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
