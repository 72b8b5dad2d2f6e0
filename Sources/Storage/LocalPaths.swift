#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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
