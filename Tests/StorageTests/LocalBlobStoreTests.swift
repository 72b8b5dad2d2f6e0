import Checkpoint
import Foundation
import RuntimeCore
import Storage
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// ``LocalBlobStore`` on a real directory: atomic durable puts, listings without temporary files, cleanup of stale
/// temporary files, pruning on delete, refusal to follow any symlink inside the root (also one swapped in while a call
/// runs), and the errno mapping.
@Suite struct LocalBlobStoreTests {
    private func key(_ raw: String) throws -> ObjectKey { try ObjectKey(raw) }

    /// Names in a directory, sorted.
    private func names(in path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    private func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Round trips

    @Test func putThenGetSizeAndOverwrite() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        let manifest = try key("task-1/step-000000100/manifest.json")

        try await store.put(manifest, bytes: Array("first".utf8))
        #expect(try await store.get(manifest) == Array("first".utf8))
        #expect(try await store.size(of: manifest) == 5)

        try await store.put(manifest, bytes: Array("second, longer".utf8))
        #expect(try await store.get(manifest) == Array("second, longer".utf8))
        #expect(try await store.size(of: manifest) == 14)

        let empty = try key("task-1/empty")
        try await store.put(empty, bytes: [])
        #expect(try await store.get(empty) == [])
        #expect(try await store.size(of: empty) == 0)
    }

    @Test func missingObjectsAreNotFoundOrNilAndDirectoriesAreNotObjects() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("task/ck/part"), bytes: [1])

        #expect(try await store.size(of: key("task/none")) == nil)
        #expect(try await store.size(of: key("task/ck")) == nil)
        #expect(try await store.size(of: key("task/ck/part/deeper")) == nil)
        for absent in try [key("task/none"), key("task/ck")] {
            let error = await #expect(throws: StorageError.self) { try await store.get(absent) }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains(absent.rawValue) == true)
        }
    }

    @Test func locationIsTheNormalizedRootAsFileURI() throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path + "//ckpt/./runs/../run-1/")
        #expect(store.root == directory.path + "/ckpt/run-1")
        #expect(store.location == BlobStoreLocation(uri: "file://" + directory.path + "/ckpt/run-1"))
        // The root was created.
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: store.root, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test func relativeRootIsRejected() {
        let error = #expect(throws: StorageError.self) { try LocalBlobStore(root: "relative/ckpt") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("absolute") == true)
    }

    // MARK: Atomic writes and temporary files

    @Test func putLeavesNoTemporaryFileBehind() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("t/ck/a.part"), bytes: [1, 2, 3])
        try await store.put(key("t/ck/a.part"), bytes: [4])
        try await store.put(key("t/ck/b.part"), bytes: [5])
        #expect(names(in: directory.file("t/ck")) == ["a.part", "b.part"])
    }

    @Test func concurrentPutsOfOneKeyLeaveOneWholeVersion() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        let object = try key("t/ck/contended")
        let versions = (1...16).map { [UInt8](repeating: UInt8($0), count: $0 * 10_000) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for version in versions { group.addTask { try await store.put(object, bytes: version) } }
            try await group.waitForAll()
        }
        // Whichever rename came last won, whole: never a mix, never a truncated file.
        let final = try await store.get(object)
        #expect(versions.contains(final))
        #expect(names(in: directory.file("t/ck")) == ["contended"])
    }

    @Test func keysThatLookLikeTemporaryFilesAreRefused() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        let error = await #expect(throws: StorageError.self) {
            try await store.put(key("t/ck/a.part.tmp-1f"), bytes: [1])
        }
        #expect(error?.code == .invalidArgument)
        #expect(names(in: directory.path) == [])
    }

    @Test func temporaryNamesFollowThePythonConvention() {
        let name = TemporaryFileName.make(for: "rank-00003.part")
        #expect(name.hasPrefix("rank-00003.part.tmp-"))
        #expect(name.dropFirst("rank-00003.part.tmp-".count).allSatisfy { $0.isHexDigit })
        #expect(TemporaryFileName.isTemporary(name))
        #expect(!TemporaryFileName.isTemporary("rank-00003.part"))
        #expect(TemporaryFileName.make(for: "x") != TemporaryFileName.make(for: "x"))
    }

    // MARK: Listing

    @Test func listIsRecursiveInKeyOrderAndHidesTemporaryFiles() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        for raw in ["ck1/a0", "ck1/a/b", "ck1/a.b", "ck1/a-b", "ck1/z/y/x", "ck10/a", "ck0/a"] {
            try await store.put(key(raw), bytes: [1])
        }
        // Incomplete writes (ours or the Python SDK's) and names that cannot be keys.
        try write("partial", to: directory.file("ck1/a/b.tmp-0123abcd"))
        try write("partial", to: directory.file("ck1/c.part.tmp-ffff"))
        try write("odd", to: directory.file("ck1/has space"))

        // Byte order, as S3 lists: '-' < '.' < '/' < '0'.
        let expected = try ["ck1/a-b", "ck1/a.b", "ck1/a/b", "ck1/a0", "ck1/z/y/x"].map(key)
        #expect(try await store.list(under: key("ck1")) == expected)
        #expect(try await store.list(under: key("ck1/z")) == [key("ck1/z/y/x")])
        #expect(try await store.list(under: key("nothing")) == [])
        // An object is not "under" itself.
        #expect(try await store.list(under: key("ck1/a0")) == [])
    }

    // MARK: Incomplete writes

    @Test func removeIncompleteWritesDeletesOnlyStaleTemporaryFilesUnderThePrefix() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("t/ck/done.part"), bytes: [1])
        let stale = [directory.file("t/ck/a.part.tmp-01"), directory.file("t/ck/nested/b.part.tmp-02")]
        let fresh = directory.file("t/ck/c.part.tmp-03")
        let elsewhere = directory.file("u/ck/d.part.tmp-04")
        for path in stale + [fresh, elsewhere] { try write("partial", to: path) }
        let hourAgo = Date() - 3600
        for path in stale + [elsewhere] {
            try FileManager.default.setAttributes([.modificationDate: hourAgo], ofItemAtPath: path)
        }

        let removed = try await store.removeIncompleteWrites(under: key("t"), startedBefore: Date() - 600)
        #expect(removed == 2)
        for path in stale { #expect(!FileManager.default.fileExists(atPath: path)) }
        #expect(FileManager.default.fileExists(atPath: fresh))
        #expect(FileManager.default.fileExists(atPath: elsewhere))
        #expect(try await store.get(key("t/ck/done.part")) == [1])

        // A later cutoff takes the fresh one too; nothing is left to remove after that.
        #expect(try await store.removeIncompleteWrites(under: key("t"), startedBefore: Date() + 60) == 1)
        #expect(try await store.removeIncompleteWrites(under: key("t"), startedBefore: Date() + 60) == 0)
        #expect(try await store.removeIncompleteWrites(under: key("missing"), startedBefore: Date()) == 0)
    }

    // MARK: Deleting

    @Test func deletePrunesEmptiedDirectoriesButNeverTheRoot() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("t/ck/a/b/part"), bytes: [1])
        try await store.put(key("t/ck/a/other"), bytes: [2])

        try await store.delete([key("t/ck/a/b/part")])
        #expect(names(in: directory.file("t/ck/a")) == ["other"])

        try await store.delete([key("t/ck/a/other"), key("t/ck/never/written")])
        #expect(names(in: directory.path) == [])
        #expect(FileManager.default.fileExists(atPath: directory.path))

        try await store.put(key("solo"), bytes: [3])
        try await store.delete([key("solo"), key("solo")])
        #expect(FileManager.default.fileExists(atPath: directory.path))
    }

    @Test func deleteKeepsDirectoriesThatStillHoldSomething() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("t/ck/part"), bytes: [1])
        try write("partial", to: directory.file("t/ck/other.part.tmp-9"))
        try await store.delete([key("t/ck/part")])
        #expect(names(in: directory.file("t/ck")) == ["other.part.tmp-9"])
    }

    // MARK: Symlinks

    @Test func symlinksLeadingOutsideTheRootAreRefused() async throws {
        let directory = TemporaryDirectory()
        let outside = TemporaryDirectory()
        try write("secret", to: outside.file("secret"))
        let store = try LocalBlobStore(root: directory.path)
        try FileManager.default.createSymbolicLink(atPath: directory.file("escape"), withDestinationPath: outside.path)
        try FileManager.default.createSymbolicLink(
            atPath: directory.file("secret-link"), withDestinationPath: outside.file("secret"))

        var failures: [StorageError?] = []
        failures.append(await #expect(throws: StorageError.self) { try await store.get(key("escape/secret")) })
        failures.append(await #expect(throws: StorageError.self) { try await store.get(key("secret-link")) })
        failures.append(await #expect(throws: StorageError.self) { try await store.size(of: key("escape/secret")) })
        failures.append(await #expect(throws: StorageError.self) { try await store.list(under: key("escape")) })
        failures.append(await #expect(throws: StorageError.self) { try await store.put(key("escape/new"), bytes: [1]) })
        failures.append(await #expect(throws: StorageError.self) { try await store.delete([key("escape/secret")]) })
        for error in failures {
            #expect(error?.code == .permissionDenied)
            #expect(error?.message.contains("the checkpoint store never follows symlinks") == true)
        }
        #expect(names(in: outside.path) == ["secret"])
        #expect(try String(contentsOfFile: outside.file("secret"), encoding: .utf8) == "secret")
    }

    @Test func symlinksInsideTheRootAreNeverFollowedAndDeletingOneRemovesTheLinkOnly() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("real/part"), bytes: [7])
        try FileManager.default.createSymbolicLink(atPath: directory.file("alias"), withDestinationPath: "real")
        try FileManager.default.createSymbolicLink(atPath: directory.file("real/link"), withDestinationPath: "part")

        for error in [
            await #expect(throws: StorageError.self) { try await store.get(key("alias/part")) },
            await #expect(throws: StorageError.self) { try await store.put(key("alias/new"), bytes: [8]) },
            await #expect(throws: StorageError.self) { try await store.get(key("real/link")) },
        ] {
            #expect(error?.code == .permissionDenied)
        }
        #expect(names(in: directory.file("real")) == ["link", "part"], "nothing written through the link")
        // Listings never walk through links or show them.
        #expect(try await store.list(under: key("real")) == [key("real/part")])
        try await store.delete([key("real/link")])
        #expect(try await store.get(key("real/part")) == [7])
        #expect(names(in: directory.file("real")) == ["part"])
    }

    /// The race a path check leaves open: `t/ck` is a directory when the store looks, and a symlink out of the root
    /// when it acts. A thread swaps the two as fast as it can while the store writes and deletes `t/ck/victim`; the
    /// file of that name outside the root must stay untouched.
    @Test func aDirectorySwappedForASymlinkWhileACallRunsCannotLeadOutside() async throws {
        let directory = TemporaryDirectory()
        let outside = TemporaryDirectory()
        try write("precious", to: outside.file("victim"))
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("t/ck/victim"), bytes: Array("inside".utf8))
        try FileManager.default.createSymbolicLink(atPath: directory.file("t/link"), withDestinationPath: outside.path)

        let stop = Atomic<Bool>(false)
        let swaps = Atomic<Int>(0)
        let (ck, real, link) = (directory.file("t/ck"), directory.file("t/real"), directory.file("t/link"))
        let swapper = Thread {
            while !stop.load(ordering: .relaxed) {
                // Each rename is atomic; between them `t/ck` is the real directory, the symlink, or missing.
                _ = rename(ck, real)
                _ = rename(link, ck)
                _ = rename(ck, link)
                _ = rename(real, ck)
                swaps.add(1, ordering: .relaxed)
            }
        }
        swapper.start()
        let started = ContinuousClock.now
        var calls = 0
        while ContinuousClock.now - started < .seconds(2) {
            // Refusals and missing directories are expected here; what matters is what happens outside.
            try? await store.delete([key("t/ck/victim")])
            try? await store.put(key("t/ck/victim"), bytes: Array("overwritten".utf8))
            calls += 2
        }
        stop.store(true, ordering: .relaxed)
        while !swapper.isFinished { try await Task.sleep(for: .milliseconds(10)) }

        #expect(calls > 100 && swaps.load(ordering: .relaxed) > 100, "the race was run")
        #expect(names(in: outside.path) == ["victim"], "nothing created outside")
        #expect(try String(contentsOfFile: outside.file("victim"), encoding: .utf8) == "precious")
    }

    // MARK: Errors from the file system

    @Test func unwritableDirectoryIsPermissionDenied() async throws {
        let directory = TemporaryDirectory()
        let store = try LocalBlobStore(root: directory.path)
        try await store.put(key("locked/existing"), bytes: [1])
        let locked = directory.file("locked")
        // Root ignores permission bits, so as root the directory is made immutable (chattr +i: EPERM even for root).
        let asRoot = geteuid() == 0
        if asRoot {
            try #require(run("/usr/bin/chattr", "+i", locked) == 0, "chattr +i failed: the test needs ext4/xfs/btrfs")
        } else {
            try #require(chmod(locked, 0o555) == 0)
        }
        defer {
            if asRoot { _ = run("/usr/bin/chattr", "-i", locked) } else { _ = chmod(locked, 0o755) }
            // Only now may the temporary directory be removed: an immutable one could not be.
            withExtendedLifetime(directory) {}
        }

        let error = await #expect(throws: StorageError.self) { try await store.put(key("locked/new"), bytes: [1]) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.hasPrefix("permission denied writing \(locked)/new.tmp-") == true)
        #expect(error?.message.contains("check the owner/permissions of the checkpoint directory") == true)
        #expect(try await store.get(key("locked/existing")) == [1])
    }

    @Test(arguments: [
        (EACCES, ErrorCode.permissionDenied, "permission denied writing /ck/x: check the owner/permissions"),
        (EPERM, .permissionDenied, "permission denied writing /ck/x"),
        (EROFS, .permissionDenied, "read-only file system writing /ck/x"),
        (ENOSPC, .resourceExhausted, "disk full writing /ck/x"),
        (EDQUOT, .resourceExhausted, "disk full writing /ck/x"),
        (ENOENT, .notFound, "/ck/x does not exist"),
        (EIO, .unavailable, "error writing /ck/x: Input/output error"),
    ])
    func errnoMapsToActionableErrors(code: Int32, expected: ErrorCode, messagePrefix: String) {
        // ENOSPC and EDQUOT cannot be provoked here without mounting a tiny file system, so the mapping that the
        // store applies to every failed call is checked directly.
        let error = StorageError.fileSystem(code, "writing", path: "/ck/x")
        #expect(error.code == expected)
        #expect(error.message.hasPrefix(messagePrefix))
    }

    /// Runs a program and returns its exit status.
    private func run(_ executable: String, _ arguments: String...) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
