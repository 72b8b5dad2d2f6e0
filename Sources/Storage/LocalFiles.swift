import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The blocking POSIX calls behind ``LocalBlobStore``, each turning `errno` into a ``StorageError`` (through
/// ``StorageError/fileSystem(_:_:path:)``) or into an optional where "missing" is an expected answer.
///
/// Plain POSIX rather than `FileManager` because the store needs `O_EXCL`, `fsync` of files and directories,
/// `lstat` (symlinks must not be followed blindly) and the real `errno` for its messages.
enum LocalFiles {
    /// What `lstat` found at a path.
    enum Entry: Equatable {
        case file(size: Int64, modified: Date)
        case directory
        case symlink
        case other
    }

    // MARK: Inspecting

    /// The entry at `path` without following a final symlink, or nil when nothing is there.
    static func entry(at path: String) throws(StorageError) -> Entry? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "inspecting", path: path)
        }
        return entry(from: info)
    }

    /// The entry `path` leads to, following symlinks, or nil when nothing is there.
    static func target(of path: String) throws(StorageError) -> Entry? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "inspecting", path: path)
        }
        return entry(from: info)
    }

    private static func entry(from info: stat) -> Entry {
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

    /// The names in a directory, without `.` and `..`, in no particular order.
    static func names(inDirectory path: String) throws(StorageError) -> [String] {
        guard let directory = opendir(path) else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return [] }
            throw .fileSystem(code, "listing", path: path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
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

    /// The bytes of the regular file at `path`, or nil when there is nothing there or it is not a regular file.
    static func contents(of path: String) throws(StorageError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .fileSystem(code, "reading", path: path)
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .fileSystem(errno, "reading", path: path) }
        guard info.st_mode & S_IFMT == S_IFREG else { return nil }

        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while true {
            if filled == bytes.count {
                // The size is a hint: read on until end of file in case the file grew in the meantime.
                bytes.append(contentsOf: repeatElement(0, count: max(4096, bytes.count / 2)))
            }
            let count = bytes.withUnsafeMutableBytes { buffer in
                read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileSystem(errno, "reading", path: path)
            }
            if count == 0 { break }
            filled += count
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    // MARK: Writing

    /// Creates a directory; false when something already exists at `path`.
    static func makeDirectory(_ path: String) throws(StorageError) -> Bool {
        guard mkdir(path, 0o755) == 0 else {
            let code = errno
            if code == EEXIST { return false }
            throw .fileSystem(code, "creating directory", path: path)
        }
        return true
    }

    /// Creates a new file (never replacing one), writes `bytes` and flushes them to stable storage.
    static func createDurably(_ path: String, bytes: [UInt8]) throws(StorageError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .fileSystem(errno, "writing", path: path) }
        var failure: StorageError?
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                failure = .fileSystem(errno, "writing", path: path)
                break
            }
            written += count
        }
        if failure == nil, fsync(descriptor) != 0 {
            failure = .fileSystem(errno, "writing", path: path)
        }
        // close can report a deferred write error (NFS, quotas): it counts as a failed write.
        if close(descriptor) != 0, failure == nil {
            failure = .fileSystem(errno, "writing", path: path)
        }
        if let failure {
            unlink(path)
            throw failure
        }
    }

    /// Renames `source` over `destination` (atomic on POSIX file systems).
    static func move(_ source: String, over destination: String) throws(StorageError) {
        guard rename(source, destination) == 0 else {
            throw .fileSystem(errno, "renaming \(source) to", path: destination)
        }
    }

    /// Flushes a directory's entries (new, renamed or removed names) to stable storage.
    static func syncDirectory(_ path: String) throws(StorageError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .fileSystem(errno, "syncing directory", path: path) }
        defer { close(descriptor) }
        // Some file systems cannot fsync a directory (EINVAL); their metadata is synchronous or not ours to force.
        guard fsync(descriptor) == 0 || errno == EINVAL else {
            throw .fileSystem(errno, "syncing directory", path: path)
        }
    }

    // MARK: Removing

    /// Removes a file or symlink; false when there was nothing to remove.
    @discardableResult
    static func remove(_ path: String) throws(StorageError) -> Bool {
        guard unlink(path) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return false }
            throw .fileSystem(code, "deleting", path: path)
        }
        return true
    }

    /// Removes a directory if it is empty; false when it is not (or is gone, or is not a directory).
    static func removeIfEmpty(directory path: String) -> Bool {
        rmdir(path) == 0
    }
}
