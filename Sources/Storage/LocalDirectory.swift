import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open directory of the local blob store, and the blocking POSIX calls on the entries in it.
///
/// Every operation names one entry *of this directory* (a single path segment) relative to its descriptor (`openat`,
/// `mkdirat`, `renameat`, `unlinkat`, `fstatat`) and never follows a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). A
/// path checked first and used by name afterwards could be swapped for a symlink in between, sending a write, rename
/// or delete outside the store; a descriptor cannot be swapped. Each call turns `errno` into a ``StorageError``
/// (through ``StorageError/fileSystem(_:_:path:)``) or into an optional where "missing" is an expected answer.
///
/// Plain POSIX rather than `FileManager` because the store needs the `*at` calls, `O_EXCL`, `fsync` of files and
/// directories and the real `errno` for its messages. Not thread-safe: one operation of the store uses it at a time.
final class LocalDirectory {
    /// What is at a name in a directory (the name itself, never where a symlink leads).
    enum Entry: Equatable {
        case file(size: Int64, modified: Date)
        case directory
        case symlink
        case other
    }

    /// The directory's path: for messages only, never used to reach it again.
    let path: String
    private let descriptor: Int32

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// Opens the directory at an absolute `path` (the store's root, whose own symlinks were resolved when the store was
    /// opened).
    ///
    /// - Throws: the mapped file-system error (`notFound` when it is gone).
    static func at(_ path: String) throws(StorageError) -> LocalDirectory {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .fileSystem(errno, "opening", path: path) }
        return LocalDirectory(descriptor: descriptor, path: path)
    }

    /// The path of an entry, for messages.
    func path(of name: String) -> String { path == "/" ? "/" + name : path + "/" + name }

    // MARK: Inspecting

    /// What is at `name`, or nil when nothing is.
    func entry(_ name: String) throws(StorageError) -> Entry? {
        var info = stat()
        guard fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "inspecting", path: path(of: name))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            #if canImport(Darwin)
                let time = info.st_mtimespec
            #else
                let time = info.st_mtim
            #endif
            let seconds = Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
            return .file(size: Int64(info.st_size), modified: Date(timeIntervalSince1970: seconds))
        case S_IFDIR:
            return .directory
        case S_IFLNK:
            return .symlink
        default:
            return .other
        }
    }

    /// The subdirectory `name`, or nil when there is none (nothing there, or something that is not a directory).
    ///
    /// - Throws: `permissionDenied` when `name` is a symlink: the store never follows one.
    func subdirectory(_ name: String) throws(StorageError) -> LocalDirectory? {
        let child = openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if child >= 0 { return LocalDirectory(descriptor: child, path: path(of: name)) }
        let code = errno
        // O_NOFOLLOW|O_DIRECTORY on a symlink fails with ELOOP or ENOTDIR depending on the system: ask what it is.
        if code == ELOOP || code == ENOTDIR, try entry(name) == .symlink { throw refusal(name) }
        if code == ENOENT || code == ENOTDIR { return nil }
        throw .fileSystem(code, "opening", path: path(of: name))
    }

    /// The names in the directory, without `.` and `..`, in no particular order.
    func names() throws(StorageError) -> [String] {
        // fdopendir takes the descriptor it is given: hand it a duplicate so that closedir leaves ours open.
        let duplicate = dup(descriptor)
        guard duplicate >= 0, let stream = fdopendir(duplicate) else {
            let code = errno
            if duplicate >= 0 { close(duplicate) }
            throw .fileSystem(code, "listing", path: path)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                // readdir returns nil both at the end and on an error; only errno tells them apart.
                if errno != 0 { throw .fileSystem(errno, "listing", path: path) }
                return names
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    // MARK: Reading

    /// The bytes of the regular file `name`, or nil when there is nothing there or it is not a regular file.
    ///
    /// - Throws: `permissionDenied` when `name` is a symlink.
    func contents(of name: String) throws(StorageError) -> [UInt8]? {
        let file = openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else {
            let code = errno
            if code == ELOOP { throw refusal(name) }
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "reading", path: path(of: name))
        }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0 else { throw .fileSystem(errno, "reading", path: path(of: name)) }
        guard info.st_mode & S_IFMT == S_IFREG else { return nil }

        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while true {
            if filled == bytes.count {
                // The size is a hint: read on until end of file in case the file grew in the meantime.
                bytes.append(contentsOf: repeatElement(0, count: max(4096, bytes.count / 2)))
            }
            let count = bytes.withUnsafeMutableBytes { buffer in
                read(file, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileSystem(errno, "reading", path: path(of: name))
            }
            if count == 0 { break }
            filled += count
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    // MARK: Writing

    /// Creates the subdirectory `name`; false when something already exists there.
    func makeSubdirectory(_ name: String) throws(StorageError) -> Bool {
        guard mkdirat(descriptor, name, 0o755) == 0 else {
            let code = errno
            if code == EEXIST { return false }
            throw .fileSystem(code, "creating directory", path: path(of: name))
        }
        return true
    }

    /// Creates the file `name` (never replacing anything, never through a symlink), writes `bytes` and flushes them to
    /// stable storage.
    func createDurably(_ name: String, bytes: [UInt8]) throws(StorageError) {
        let file = openat(descriptor, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .fileSystem(errno, "writing", path: path(of: name)) }
        var failure: StorageError?
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                write(file, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                failure = .fileSystem(errno, "writing", path: path(of: name))
                break
            }
            written += count
        }
        if failure == nil, fsync(file) != 0 {
            failure = .fileSystem(errno, "writing", path: path(of: name))
        }
        // close can report a deferred write error (NFS, quotas): it counts as a failed write.
        if close(file) != 0, failure == nil {
            failure = .fileSystem(errno, "writing", path: path(of: name))
        }
        if let failure {
            unlinkat(descriptor, name, 0)
            throw failure
        }
    }

    /// Renames the entry `source` over `destination`, both in this directory (atomic on POSIX file systems; a symlink
    /// at `destination` is replaced, never followed).
    func move(_ source: String, over destination: String) throws(StorageError) {
        guard renameat(descriptor, source, descriptor, destination) == 0 else {
            throw .fileSystem(errno, "renaming \(path(of: source)) to", path: path(of: destination))
        }
    }

    /// Flushes the directory's entries (new, renamed or removed names) to stable storage.
    func sync() throws(StorageError) {
        // Some file systems cannot fsync a directory (EINVAL); their metadata is synchronous or not ours to force.
        guard fsync(descriptor) == 0 || errno == EINVAL else {
            throw .fileSystem(errno, "syncing directory", path: path)
        }
    }

    // MARK: Removing

    /// Removes the file (or symlink: the link itself, never what it leads to) `name`; false when nothing was there.
    @discardableResult
    func remove(_ name: String) throws(StorageError) -> Bool {
        guard unlinkat(descriptor, name, 0) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return false }
            throw .fileSystem(code, "deleting", path: path(of: name))
        }
        return true
    }

    /// Removes the subdirectory `name` if it is empty; false when it is not (or is gone, or is not a directory).
    func removeIfEmpty(subdirectory name: String) -> Bool {
        unlinkat(descriptor, name, AT_REMOVEDIR) == 0
    }

    /// The error for a symlink met below the root.
    private func refusal(_ name: String) -> StorageError {
        StorageError(
            .permissionDenied,
            "refusing to follow the symlink \(path(of: name)): the checkpoint store never follows symlinks inside "
                + "its directory (replace the link with the directory or file itself)")
    }
}

/// The few path-based calls needed to create and resolve the store's root, before it can be opened.
enum LocalPaths {
    /// Whether something (anything, even a dangling symlink) is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Whether `path` leads to a directory (following symlinks).
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// Creates a directory; false when something already exists at `path`.
    static func makeDirectory(_ path: String) throws(StorageError) -> Bool {
        guard mkdir(path, 0o755) == 0 else {
            let code = errno
            if code == EEXIST { return false }
            throw .fileSystem(code, "creating directory", path: path)
        }
        return true
    }

    /// The canonical absolute path (`realpath`), or nil when the path or one of its links leads nowhere.
    static func realPath(_ path: String) throws(StorageError) -> String? {
        guard let resolved = realpath(path, nil) else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "resolving", path: path)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
