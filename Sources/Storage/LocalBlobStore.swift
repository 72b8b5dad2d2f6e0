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
/// Keys cannot name anything outside the root (``ObjectKey`` forbids `..` and absolute paths), and the store never
/// follows a symlink inside the root: every call walks from the root's descriptor one directory at a time with
/// `O_NOFOLLOW` and acts on names relative to the directory's descriptor (``LocalDirectory``), so a directory swapped
/// for a symlink while a call runs cannot send it elsewhere. A symlink on a key's way is refused (`permissionDenied`);
/// listings skip symlinks. The root itself may be a symlink: it is resolved once, when the store is opened.
///
/// Every call runs its blocking I/O on NIO's thread pool, off Swift's cooperative threads.
public struct LocalBlobStore: BlobStore {
    /// The root directory as configured: absolute and normalized (no `.`, `..`, repeated or trailing slashes).
    public let root: String
    /// The root's real path (symlinks resolved), which every call opens.
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
            if !LocalPaths.exists(directory) {
                _ = try LocalPaths.makeDirectory(directory)
            }
        }
        guard let real = try LocalPaths.realPath(normalized), LocalPaths.isDirectory(real) else {
            throw StorageError(.failedPrecondition, "checkpoint directory \(normalized) is not a directory")
        }
        self.root = normalized
        self.realRoot = real
    }

    // MARK: BlobStore

    /// Writes the object atomically and durably (temporary file, fsync, rename, fsync of the directory).
    ///
    /// - Throws: `invalidArgument` for a key whose last segment looks like a temporary file (it would be invisible and
    ///   swept as an incomplete write); `permissionDenied` (also for a symlink on the key's way),
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
    /// - Throws: `notFound` when there is no such object (or the key names a directory); `permissionDenied` for a
    ///   symlink on its way.
    public func get(_ key: ObjectKey) async throws(StorageError) -> [UInt8] {
        try await BlockingIO.run { () throws(StorageError) in
            guard let parent = try self.directory(holding: key), let bytes = try parent.contents(of: key.lastSegment)
            else {
                throw StorageError(.notFound, "no object \(key) in \(self.location.uri)")
            }
            return bytes
        }
    }

    /// The object's size, or nil when there is none (a directory is not an object).
    ///
    /// - Throws: `permissionDenied` for a symlink on its way (or in its place).
    public func size(of key: ObjectKey) async throws(StorageError) -> Int64? {
        try await BlockingIO.run { () throws(StorageError) in
            guard let parent = try self.directory(holding: key) else { return nil }
            switch try parent.entry(key.lastSegment) {
            case .file(let size, _):
                return size
            case .symlink:
                // Read through the refusal that opening it gives, so both calls word it the same.
                _ = try parent.contents(of: key.lastSegment)
                return nil
            default:
                return nil
            }
        }
    }

    /// Every complete object below the directory `prefix` (recursively), in key order.
    ///
    /// Temporary files, symlinks, and names that are not valid ``ObjectKey`` segments are left out; an object whose
    /// key equals `prefix` itself is not "under" it.
    public func list(under prefix: ObjectKey) async throws(StorageError) -> [ObjectKey] {
        try await BlockingIO.run { () throws(StorageError) in
            var keys: [ObjectKey] = []
            try self.walk(under: prefix) { key, _, _ in keys.append(key) }
            // Directory order differs from key order ('/' sorts between '.' and '0'): sort the keys as S3 would.
            return keys.sorted { $0.rawValue.utf8.lexicographicallyPrecedes($1.rawValue.utf8) }
        }
    }

    /// Deletes objects (missing ones are fine) and then every directory this left empty, up to but never the root.
    public func delete(_ keys: [ObjectKey]) async throws(StorageError) {
        try await BlockingIO.run { () throws(StorageError) in
            for key in keys {
                // The directories from the root down to the object's, each opened from the one before.
                var chain = [try LocalDirectory.at(self.realRoot)]
                for segment in key.segments.dropLast() {
                    guard let next = try chain.last!.subdirectory(String(segment)) else { break }
                    chain.append(next)
                }
                guard chain.count == key.segments.count else { continue }
                try chain.last!.remove(key.lastSegment)
                // Prune what this left empty, innermost first; stop at the first directory still holding something.
                for depth in stride(from: chain.count - 1, to: 0, by: -1) {
                    guard chain[depth - 1].removeIfEmpty(subdirectory: String(key.segments[depth - 1])) else { break }
                }
            }
        }
    }

    /// Deletes the temporary files (`*.tmp-*`) below `prefix` last modified before `cutoff`, returning how many.
    public func removeIncompleteWrites(under prefix: ObjectKey, startedBefore cutoff: Date) async throws(StorageError)
        -> Int
    {
        try await BlockingIO.run { () throws(StorageError) in
            var removed = 0
            try self.walk(under: prefix, includeTemporary: true) { (_, entry, directory) throws(StorageError) in
                if case .file(_, let modified) = entry.kind, entry.isTemporary, modified < cutoff {
                    // A file that vanished meanwhile was renamed into place or swept by someone else: not ours to
                    // count.
                    if try directory.remove(entry.name) { removed += 1 }
                }
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
            let temporary = TemporaryFileName.make(for: name)
            do {
                try directory.createDurably(temporary, bytes: bytes)
            } catch  where error.code == .notFound && attempt < 3 {
                continue
            }
            do {
                try directory.move(temporary, over: name)
            } catch {
                _ = try? directory.remove(temporary)
                throw error
            }
            // The rename and any new directories must reach the disk too, or a crash could lose the object.
            try directory.sync()
            for parent in created.reversed() { try parent.sync() }
            return
        }
    }

    /// Opens (creating what is missing) the directories leading to `key`, never through a symlink; returns the
    /// object's directory and the parents of the directories created (outermost first), whose entries must be synced.
    private func makeParentDirectories(of key: ObjectKey) throws(StorageError) -> (LocalDirectory, [LocalDirectory]) {
        var current = try LocalDirectory.at(realRoot)
        var created: [LocalDirectory] = []
        for segment in key.segments.dropLast().map(String.init) {
            if let next = try current.subdirectory(segment) {
                current = next
                continue
            }
            // Nothing there, or something that is not a directory (or appeared concurrently).
            let made = try current.makeSubdirectory(segment)
            guard let next = try current.subdirectory(segment) else {
                throw StorageError(
                    .failedPrecondition, "cannot write \(key): \(current.path(of: segment)) is not a directory")
            }
            if made { created.append(current) }
            current = next
        }
        return (current, created)
    }

    // MARK: Walking

    /// A file met by ``walk(under:includeTemporary:_:)``.
    private struct WalkEntry {
        var name: String
        var kind: LocalDirectory.Entry
        var isTemporary: Bool
    }

    /// The directory holding `key`'s object, or nil when one on the way is missing (or not a directory).
    ///
    /// - Throws: `permissionDenied` when one on the way is a symlink.
    private func directory(holding key: ObjectKey) throws(StorageError) -> LocalDirectory? {
        var current = try LocalDirectory.at(realRoot)
        for segment in key.segments.dropLast() {
            guard let next = try current.subdirectory(String(segment)) else { return nil }
            current = next
        }
        return current
    }

    /// Visits the regular files below `prefix` depth-first with their keys and directories; never follows a symlink.
    /// Holds one open directory per level (keys are short), however wide the tree.
    private func walk(
        under prefix: ObjectKey, includeTemporary: Bool = false,
        _ visit: (ObjectKey, WalkEntry, LocalDirectory) throws(StorageError) -> Void
    ) throws(StorageError) {
        guard let parent = try directory(holding: prefix), let top = try parent.subdirectory(prefix.lastSegment) else {
            return
        }
        try walk(top, keyPrefix: prefix.rawValue, includeTemporary: includeTemporary, visit)
    }

    private func walk(
        _ directory: LocalDirectory, keyPrefix: String, includeTemporary: Bool,
        _ visit: (ObjectKey, WalkEntry, LocalDirectory) throws(StorageError) -> Void
    ) throws(StorageError) {
        for name in try directory.names() {
            // Names that cannot be keys (spaces, non-ASCII, too long) are not ours: skip them.
            guard let key = try? ObjectKey(keyPrefix + "/" + name) else { continue }
            switch try directory.entry(name) {
            case .directory:
                // Swapped for a symlink since it was inspected: skipped like any symlink.
                let child: LocalDirectory?
                do {
                    child = try directory.subdirectory(name)
                } catch  where error.code == .permissionDenied {
                    continue
                }
                if let child { try walk(child, keyPrefix: key.rawValue, includeTemporary: includeTemporary, visit) }
            case .some(let kind) where kind != .symlink && kind != .other:
                let temporary = TemporaryFileName.isTemporary(name)
                if includeTemporary || !temporary {
                    try visit(key, WalkEntry(name: name, kind: kind, isTemporary: temporary), directory)
                }
            default:
                continue
            }
        }
    }

    // MARK: Paths

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

extension ObjectKey {
    /// The last segment: the object's name in its directory.
    fileprivate var lastSegment: String { String(segments.last!) }
}
