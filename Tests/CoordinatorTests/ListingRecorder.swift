import Checkpoint
import Foundation
import Storage
import Synchronization

/// The prefixes a ``ListingRecorder`` was asked to list.
final class Listings: Sendable {
    private let prefixes = Mutex<[String]>([])

    func note(_ prefix: ObjectKey) {
        prefixes.withLock { $0.append(prefix.description) }
    }

    /// How many times `prefix` was listed.
    func count(_ prefix: String) -> Int {
        prefixes.withLock { $0.count { $0 == prefix } }
    }
}

/// A real store that notes every prefix it is asked to list (what a sweep looked at), then lists it.
struct ListingRecorder: BlobStore {
    let store: LocalBlobStore
    let listings: Listings

    var location: BlobStoreLocation { store.location }

    func put(_ key: ObjectKey, bytes: [UInt8]) async throws(StorageError) {
        try await store.put(key, bytes: bytes)
    }

    func get(_ key: ObjectKey) async throws(StorageError) -> [UInt8] {
        try await store.get(key)
    }

    func size(of key: ObjectKey) async throws(StorageError) -> Int64? {
        try await store.size(of: key)
    }

    func list(under prefix: ObjectKey) async throws(StorageError) -> [ObjectKey] {
        listings.note(prefix)
        return try await store.list(under: prefix)
    }

    func delete(_ keys: [ObjectKey]) async throws(StorageError) {
        try await store.delete(keys)
    }

    func removeIncompleteWrites(under prefix: ObjectKey, startedBefore cutoff: Date) async throws(StorageError) -> Int {
        try await store.removeIncompleteWrites(under: prefix, startedBefore: cutoff)
    }
}
