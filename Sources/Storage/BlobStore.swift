public import Checkpoint
public import Foundation

/// Where a blob store lives, as workers are told (`StorageLocation` on the wire).
public struct BlobStoreLocation: Sendable, Hashable {
    /// `file:///absolute/path` or `s3://bucket/prefix`.
    public var uri: String
    /// S3 only: the endpoint URL (e.g. `http://127.0.0.1:8333`); empty for AWS's default or a local directory.
    public var endpoint: String
    /// S3 only: the signing region.
    public var region: String

    /// Creates a location.
    public init(uri: String, endpoint: String = "", region: String = "") {
        self.uri = uri
        self.endpoint = endpoint
        self.region = region
    }
}

/// Object storage for checkpoints: a local directory or an S3 bucket. Keys are ``ObjectKey``s, relative to the
/// store's root (the directory, or the bucket's prefix), so nothing can be read or written outside it.
///
/// Workers write the big parts themselves; the coordinator uses a store for manifests, size checks, listings and
/// deletes. Every failure is a ``StorageError`` whose message names the store and says what to do.
public protocol BlobStore: Sendable {
    /// What workers are told about this store.
    var location: BlobStoreLocation { get }

    /// Writes an object whole and durably, atomically: readers see the previous object or the new one, never a part.
    func put(_ key: ObjectKey, bytes: [UInt8]) async throws(StorageError)

    /// Reads an object; `notFound` when there is none.
    func get(_ key: ObjectKey) async throws(StorageError) -> [UInt8]

    /// The size of an object in bytes, or nil when there is none.
    func size(of key: ObjectKey) async throws(StorageError) -> Int64?

    /// Every complete object whose key starts with the segments of `prefix` (recursively), in key order.
    func list(under prefix: ObjectKey) async throws(StorageError) -> [ObjectKey]

    /// Deletes objects; keys that do not exist are not an error.
    func delete(_ keys: [ObjectKey]) async throws(StorageError)

    /// Removes unfinished writes under `prefix` started before `cutoff` (a local directory's temporary files, an S3
    /// bucket's incomplete multipart uploads) and returns how many it removed.
    func removeIncompleteWrites(under prefix: ObjectKey, startedBefore cutoff: Date) async throws(StorageError) -> Int
}
