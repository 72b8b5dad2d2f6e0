import Foundation
import RuntimeCore
import Storage
import Testing

@Suite("SQLite state store")
struct SQLiteStateStoreTests {
    let directory = TemporaryDirectory()

    func record(_ id: String, task: String = "", seq: UInt64, standing: Standing = .member) throws -> WorkerRecord {
        WorkerRecord(
            spec: WorkerSpec(
                id: try WorkerID(id), taskID: try TaskID(task), host: "10.1.2.3", port: 9000 + Int(seq), gpuCount: 8,
                labels: ["zone": "eu-west-1a", "node": "n\(seq)"]),
            joinSeq: seq, registeredAtMillis: 1_800_000_000_000 + Int64(seq), standing: standing,
            departedAtMillis: standing == .member ? nil : 1_800_000_100_000)
    }

    @Test("membership changes survive closing and reopening the database")
    func roundTrip() async throws {
        let path = directory.file("state.sqlite")
        let a = try record("a", seq: 1)
        let b = try record("b", task: "job", seq: 2)
        let c = try record("c", seq: 3, standing: .dead)
        do {
            let store = try SQLiteStateStore(path: path)
            try await store.commit([
                .membership(MembershipChange(upserted: [a, b], epochs: [.default: 1, try TaskID("job"): 1])),
                .membership(MembershipChange(upserted: [c], epochs: [.default: 2])),
            ])
        }
        let reopened = try SQLiteStateStore(path: path).loadMembership()
        #expect(reopened.records == [a, b, c])
        #expect(reopened.epochs == [.default: 2, try TaskID("job"): 1])
    }

    @Test("upserts replace, forgets delete, in order within a batch")
    func upsertAndForget() async throws {
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"))
        var a = try record("a", seq: 1)
        try await store.commit([.membership(MembershipChange(upserted: [a, try record("b", seq: 2)]))])
        a.standing = .left
        a.departedAtMillis = 1_800_000_200_000
        try await store.commit([
            .membership(MembershipChange(upserted: [a])),
            .membership(MembershipChange(forgotten: [try WorkerID("b")])),
        ])
        #expect(try store.loadMembership().records == [a])
    }

    @Test("an unwritable location is a clear unavailable error")
    func unwritable() {
        let error = #expect(throws: StorageError.self) {
            try SQLiteStateStore(path: "/proc/no-such-dir/state.sqlite")
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("cannot open the state database /proc/no-such-dir/state.sqlite") == true)
    }
}

@Suite("Data directory lock")
struct DataDirectoryTests {
    @Test("a second holder of the same data dir is refused with a message that says what to do")
    func exclusive() throws {
        let directory = TemporaryDirectory()
        let path = (directory.path as NSString).appendingPathComponent("data")
        var first: DataDirectory? = try DataDirectory(path: path)
        #expect(FileManager.default.fileExists(atPath: path))
        let error = #expect(throws: StorageError.self) { try DataDirectory(path: path) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("is in use by another coordinator (pid \(getpid()))") == true)
        #expect(error?.message.hasSuffix("stop it or pass --data-dir") == true)
        first = nil
        #expect(first == nil)
        _ = try DataDirectory(path: path)
    }
}
