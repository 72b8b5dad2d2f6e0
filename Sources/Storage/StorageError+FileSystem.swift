#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension StorageError {
    /// Maps the `errno` of a failed file-system call to an error a person can act on.
    ///
    /// - Parameters:
    ///   - code: the `errno` value.
    ///   - action: what was being done, as it reads after "permission denied" (e.g. `writing`, `reading`).
    ///   - path: the file or directory involved.
    public static func fileSystem(_ code: Int32, _ action: String, path: String) -> StorageError {
        let reason = String(cString: strerror(code))
        switch code {
        case EACCES, EPERM:
            return StorageError(
                .permissionDenied,
                "permission denied \(action) \(path): check the owner/permissions of the checkpoint directory")
        case EROFS:
            return StorageError(
                .permissionDenied,
                "read-only file system \(action) \(path): mount the checkpoint directory read-write or choose another")
        case ENOSPC, EDQUOT:
            return StorageError(
                .resourceExhausted,
                "disk full \(action) \(path) (\(reason)): free space, lower checkpoint retention, "
                    + "or move the checkpoint directory")
        case ENOENT:
            return StorageError(.notFound, "\(path) does not exist (\(reason), while \(action) it)")
        default:
            return StorageError(.unavailable, "error \(action) \(path): \(reason) (errno \(code))")
        }
    }
}
