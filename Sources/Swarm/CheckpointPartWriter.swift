import Checkpoint
import Crypto
import Foundation
public import RuntimeProto
import Storage
import Synchronization

/// Writes simulated workers' checkpoint parts straight to the store the coordinator names (as the SDK does: the
/// coordinator never sees the bytes), one store opened per location and shared by the swarm.
public final class CheckpointPartWriter: Sendable {
    private let stores = Mutex<[String: any BlobStore]>([:])

    /// A writer with no store opened yet.
    public init() {}

    /// Writes `bytes` under `key` in `location`; returns the part's size and sha256 (lower-case hex).
    ///
    /// - Throws: `StorageError` from the store (or for a location it cannot open), `CoreError` for a bad key.
    public func write(_ bytes: [UInt8], key: String, location: Dtruntime_V1_StorageLocation) async throws -> (
        size: Int64, sha256: String
    ) {
        let store = try self.store(location)
        try await store.put(try ObjectKey(key), bytes: bytes)
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        return (Int64(bytes.count), digest)
    }

    private func store(_ location: Dtruntime_V1_StorageLocation) throws -> any BlobStore {
        if let store = stores.withLock({ $0[location.uri] }) { return store }
        let store = try BlobStoreFactory.open(uri: location.uri, endpoint: location.endpoint, region: location.region)
        stores.withLock { $0[location.uri] = store }
        return store
    }
}
