public import Checkpoint
public import Foundation
import RuntimeCore

/// A checkpoint store in a local (or network-mounted) directory.
///
/// Writes are atomic and durable: ``put(_:bytes:)`` writes `<name>.tmp-<hex>` beside the final file, fsyncs it, renames
/// it over the final name and fsyncs the directory, so readers and crashes see the old object or the new one. Files
/// named like that are incomplete writes (the Python SDK uses the same convention for the parts it writes): listings
/// hide them and ``removeIncompleteWrites(under:startedBefore:)`` deletes the stale ones.
///
/// Keys cannot name anything outside the root (``ObjectKey`` forbids `..` and absolute paths), and the store refuses
/// to follow a symlink whose real path leaves the root. Listings never descend into symlinks at all.
///
/// Every call runs its blocking I/O on NIO's thread pool, off Swift's cooperative threads.
public struct LocalBlobStore: BlobStore {
    /// The root directory as configured: absolute and normalized (no `.`, `..`, repeated or trailing slashes).
    public let root: String
    /// The root's real path (symlinks resolved), against which every resolved path is checked.
    private let realRoot: String

    /// What workers are told: `file://<root>`.
    public var location: BlobStoreLocation { BlobStoreLocation(uri: "file://" + root) }

    /// Opens the store at `root`, creating the directory (and its parents) when missing.
    ///
    /// - Throws: `invalidArgument` when `root` is not an absolute path; the mapped file-system error when the
    ///   directory cannot be created or resolved.
    public init(root: String) throws(StorageError) {
        guard let normalized = Self.normalize(root) else {
            throw StorageError(
                .invalidArgument,
                "checkpoint directory must be an absolute path without NUL bytes (got \(Validation.quoted(root)))")
        }
        var directory = ""
        for segment in normalized.split(separator: "/") {
            directory += "/" + segment
            if try LocalFiles.entry(at: directory) == nil {
                _ = try LocalFiles.makeDirectory(directory)
            }
        }
        guard let real = try LocalFiles.realPath(normalized), try LocalFiles.target(of: real) == .directory else {
            throw StorageError(.failedPrecondition, "checkpoint directory \(normalized) is not a directory")
        }
        self.root = normalized
        self.realRoot = real
    }

    // MARK: BlobStore

    /// Writes the object atomically and durably (temporary file, fsync, rename, fsync of the directory).
    ///
    /// - Throws: `invalidArgument` for a key whose last segment looks like a temporary file (it would be invisible and
    ///   swept as an incomplete write); `permissionDenied` (also for a symlink leading outside the root),
    ///   `resourceExhausted` (disk full) or `unavailable` from the file system.
    public func put(_ key: ObjectKey, bytes: [UInt8]) async throws(StorageError) {
        let name = String(key.segments.last!)
        guard !TemporaryFileName.isTemporary(name) else {
            throw StorageError(
                .invalidArgument,
                "object key \(key) ends like a temporary file (*\(TemporaryFileName.marker)*): choose another name")
        }
        try await BlockingIO.run { () throws(StorageError) in try self.write(key, name: name, bytes: bytes) }
    }

    /// Reads an object.
    ///
    /// - Throws: `notFound` when there is no such object (or the key names a directory).
    public func get(_ key: ObjectKey) async throws(StorageError) -> [UInt8] {
        try await BlockingIO.run { () throws(StorageError) in
            let path = self.path(of: key)
            guard let real = try self.resolveInside(path), let bytes = try LocalFiles.contents(of: real) else {
                throw StorageError(.notFound, "no object \(key) in \(self.location.uri)")
            }
            return bytes
        }
    }

    /// The object's size, or nil when there is none (a directory is not an object).
    public func size(of key: ObjectKey) async throws(StorageError) -> Int64? {
        try await BlockingIO.run { () throws(StorageError) in
            guard let real = try self.resolveInside(self.path(of: key)),
                case .file(let size, _) = try LocalFiles.target(of: real)
            else { return nil }
            return size
        }
    }

    /// Every complete object below the directory `prefix` (recursively), in key order.
    ///
    /// Temporary files, symlinks, and names that are not valid ``ObjectKey`` segments are left out; an object whose
    /// key equals `prefix` itself is not "under" it.
    public func list(under prefix: ObjectKey) async throws(StorageError) -> [ObjectKey] {
        try await BlockingIO.run { () throws(StorageError) in
            var keys: [ObjectKey] = []
            try self.walk(under: prefix) { key, _ in keys.append(key) }
            // Directory order differs from key order ('/' sorts between '.' and '0'): sort the keys as S3 would.
            return keys.sorted { $0.rawValue.utf8.lexicographicallyPrecedes($1.rawValue.utf8) }
        }
    }

    /// Deletes objects (missing ones are fine) and then every directory this left empty, up to but never the root.
    public func delete(_ keys: [ObjectKey]) async throws(StorageError) {
        try await BlockingIO.run { () throws(StorageError) in
            for key in keys {
                let path = self.path(of: key)
                let parent = Self.parent(of: path)
                guard try self.resolveInside(parent) != nil else { continue }
                try LocalFiles.remove(path)
                self.pruneEmptyDirectories(from: parent)
            }
        }
    }

    /// Deletes the temporary files (`*.tmp-*`) below `prefix` last modified before `cutoff`, returning how many.
    public func removeIncompleteWrites(under prefix: ObjectKey, startedBefore cutoff: Date) async throws(StorageError)
        -> Int
    {
        try await BlockingIO.run { () throws(StorageError) in
            var stale: [String] = []
            try self.walk(under: prefix, includeTemporary: true) { _, entry in
                if case .file(_, let modified) = entry.kind, entry.isTemporary, modified < cutoff {
                    stale.append(entry.path)
                }
            }
            var removed = 0
            for path in stale {
                // A file that vanished meanwhile was renamed into place or swept by someone else: not ours to count.
                if try LocalFiles.remove(path) { removed += 1 }
            }
            return removed
        }
    }

    // MARK: Writing

    private func write(_ key: ObjectKey, name: String, bytes: [UInt8]) throws(StorageError) {
        // A concurrent delete may prune a directory we just created before the temporary file exists in it; one
        // more pass re-creates it.
        var attempt = 0
        while true {
            attempt += 1
            let (directory, created) = try makeParentDirectories(of: key)
            let temporary = directory + "/" + TemporaryFileName.make(for: name)
            do {
                try LocalFiles.createDurably(temporary, bytes: bytes)
            } catch  where error.code == .notFound && attempt < 3 {
                continue
            }
            do {
                try LocalFiles.move(temporary, over: directory + "/" + name)
            } catch {
                _ = try? LocalFiles.remove(temporary)
                throw error
            }
            // The rename and any new directories must reach the disk too, or a crash could lose the object.
            try LocalFiles.syncDirectory(directory)
            for directory in created.reversed() { try LocalFiles.syncDirectory(Self.parent(of: directory)) }
            return
        }
    }

    /// Creates the directories leading to `key`, refusing symlinks that lead outside the root; returns the parent
    /// directory's path and the directories created (outermost first).
    private func makeParentDirectories(of key: ObjectKey) throws(StorageError) -> (String, [String]) {
        var current = root
        var created: [String] = []
        for segment in key.segments.dropLast() {
            current = current == "/" ? "/" + segment : current + "/" + segment
            if try LocalFiles.entry(at: current) == nil, try LocalFiles.makeDirectory(current) {
                created.append(current)
                continue
            }
            // Something exists (or appeared concurrently): it must be a directory, or a symlink to one in the root.
            switch try LocalFiles.entry(at: current) {
            case .directory:
                continue
            case .symlink:
                if let real = try resolveInside(current), try LocalFiles.target(of: real) == .directory { continue }
                throw StorageError(.failedPrecondition, "cannot write \(key): \(current) is not a directory")
            case nil:
                throw StorageError(.unavailable, "cannot write \(key): \(current) vanished while being created")
            case .file, .other:
                throw StorageError(.failedPrecondition, "cannot write \(key): \(current) is not a directory")
            }
        }
        return (current, created)
    }

    // MARK: Walking

    /// A file met by ``walk(under:includeTemporary:_:)``.
    private struct WalkEntry {
        var path: String
        var kind: LocalFiles.Entry
        var isTemporary: Bool
    }

    /// Visits the regular files below `prefix` depth-first with their keys; never follows a symlink.
    private func walk(
        under prefix: ObjectKey, includeTemporary: Bool = false, _ visit: (ObjectKey, WalkEntry) -> Void
    ) throws(StorageError) {
        guard let real = try resolveInside(path(of: prefix)), try LocalFiles.target(of: real) == .directory else {
            return
        }
        var pending: [(directory: String, key: String)] = [(real, prefix.rawValue)]
        while let next = pending.popLast() {
            let (directory, keyPrefix) = next
            for name in try LocalFiles.names(inDirectory: directory) {
                let path = directory + "/" + name
                // Names that cannot be keys (spaces, non-ASCII, too long) are not ours: skip them.
                guard let key = try? ObjectKey(keyPrefix + "/" + name) else { continue }
                switch try LocalFiles.entry(at: path) {
                case .directory:
                    pending.append((path, key.rawValue))
                case .some(let kind) where kind != .symlink && kind != .other:
                    let temporary = TemporaryFileName.isTemporary(name)
                    if includeTemporary || !temporary {
                        visit(key, WalkEntry(path: path, kind: kind, isTemporary: temporary))
                    }
                default:
                    continue
                }
            }
        }
    }

    // MARK: Paths

    private func path(of key: ObjectKey) -> String {
        root == "/" ? "/" + key.rawValue : root + "/" + key.rawValue
    }

    /// The real path of `path`, or nil when it leads nowhere.
    ///
    /// - Throws: `permissionDenied` when it resolves outside the root (a symlink pointing elsewhere).
    private func resolveInside(_ path: String) throws(StorageError) -> String? {
        guard let real = try LocalFiles.realPath(path) else { return nil }
        guard realRoot == "/" || real == realRoot || real.hasPrefix(realRoot + "/") else {
            // Where it leads is not said: that would tell a client what lies outside the store.
            throw StorageError(
                .permissionDenied,
                "refusing to follow \(path): a symlink leads outside the checkpoint directory \(root)")
        }
        return real
    }

    private func pruneEmptyDirectories(from directory: String) {
        var current = directory
        while current != root, current.hasPrefix(root), LocalFiles.removeIfEmpty(directory: current) {
            current = Self.parent(of: current)
        }
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// An absolute path with `.`, `..` and empty segments removed, or nil when `path` is not absolute.
    static func normalize(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return nil }
        var segments: [Substring] = []
        for segment in path.split(separator: "/") where segment != "." {
            if segment == ".." {
                _ = segments.popLast()
            } else {
                segments.append(segment)
            }
        }
        return "/" + segments.joined(separator: "/")
    }
}
