import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The coordinator's data directory, held under an exclusive lock for the life of the process so that two
/// coordinators never share one state database. The lock is an `flock`, which the kernel releases when the process
/// dies, even by `kill -9`.
public final class DataDirectory: Sendable {
    /// The directory's path as given.
    public let path: String
    /// Descriptor of the lock file; closed (unlocked) on deinit.
    private let lockDescriptor: Int32

    /// Creates the directory if needed and takes its lock.
    ///
    /// - Throws: `failedPrecondition` when another process holds the lock; `unavailable` when the directory cannot be
    ///   created or written.
    public init(path: String) throws(StorageError) {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError(
                .unavailable, "cannot create data dir \(path): \(error.localizedDescription); pass --data-dir")
        }
        let lockPath = (path as NSString).appendingPathComponent("LOCK")
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StorageError(
                .unavailable, "cannot open \(lockPath): \(String(cString: strerror(errno))); pass --data-dir")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder =
                (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw StorageError(
                .failedPrecondition,
                "data dir \(path) is in use by another coordinator\(holder.isEmpty ? "" : " (pid \(holder))"): "
                    + "stop it or pass --data-dir")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        self.lockDescriptor = fd
    }

    deinit {
        close(lockDescriptor)
    }

    /// The default checkpoint directory, `<data dir>/checkpoints`, as an absolute path.
    public var defaultCheckpointsPath: String {
        let absolute =
            path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return ((absolute as NSString).appendingPathComponent("checkpoints") as NSString).standardizingPath
    }

    /// The state database inside the directory.
    public var databasePath: String { (path as NSString).appendingPathComponent("coordinator.sqlite") }
}
