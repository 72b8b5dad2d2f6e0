import Foundation
import GRDB
public import RuntimeCore

/// One durable change the engine asks the store to make. Later features add cases (ledgers, checkpoints, tasks).
public enum StateChange: Sendable, Hashable {
    /// Worker records and task epochs.
    case membership(MembershipChange)
}

/// The durable membership read back at start-up.
public struct PersistedMembership: Sendable, Hashable {
    /// Every retained worker record.
    public var records: [WorkerRecord]
    /// Each task's membership epoch.
    public var epochs: [TaskID: UInt64]
}

/// The coordinator's durable state in an embedded SQLite database (WAL, `synchronous=FULL`), through GRDB.
///
/// Writes arrive in batches from ``WriteBehindQueue``: one transaction (one fsync) per batch, however many changes
/// it holds.
public final class SQLiteStateStore: Sendable {
    private let pool: DatabasePool

    /// Opens (creating and migrating if needed) the database at `path`.
    public init(path: String) throws(StorageError) {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // FULL: a committed batch survives power loss, not only a crash; group commit keeps this cheap.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(5)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw StorageError(.unavailable, "cannot open the state database \(path): \(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-membership") { db in
            try db.execute(
                sql: """
                    CREATE TABLE worker (
                        id TEXT PRIMARY KEY NOT NULL,
                        task_id TEXT NOT NULL,
                        host TEXT NOT NULL,
                        port INTEGER NOT NULL,
                        gpu_count INTEGER NOT NULL,
                        labels TEXT NOT NULL,
                        join_seq INTEGER NOT NULL,
                        registered_at_ms INTEGER NOT NULL,
                        standing TEXT NOT NULL,
                        departed_at_ms INTEGER
                    );
                    CREATE TABLE task_membership (
                        task_id TEXT PRIMARY KEY NOT NULL,
                        epoch INTEGER NOT NULL
                    );
                    """)
        }
        return migrator
    }

    // MARK: Reading

    /// Reads the durable membership.
    public func loadMembership() throws(StorageError) -> PersistedMembership {
        do {
            return try pool.read { db in
                let records = try Row.fetchAll(db, sql: "SELECT * FROM worker ORDER BY join_seq").map(Self.record)
                var epochs: [TaskID: UInt64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT task_id, epoch FROM task_membership") {
                    let epoch: Int64 = row["epoch"]
                    epochs[try TaskID(row["task_id"])] = UInt64(truncatingIfNeeded: epoch)
                }
                return PersistedMembership(records: records, epochs: epochs)
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.internal, "the state database holds a row this coordinator cannot read: \(error)")
        }
    }

    private static func record(_ row: Row) throws -> WorkerRecord {
        let labelsJSON: String = row["labels"]
        let labels = try JSONDecoder().decode([String: String].self, from: Data(labelsJSON.utf8))
        let standingName: String = row["standing"]
        guard let standing = Standing(rawValue: standingName) else {
            throw StorageError(.internal, "unknown worker standing \(standingName) in the state database")
        }
        let joinSeq: Int64 = row["join_seq"]
        let spec = WorkerSpec(
            id: try WorkerID(row["id"]), taskID: try TaskID(row["task_id"]), host: row["host"], port: row["port"],
            gpuCount: row["gpu_count"], labels: labels)
        return WorkerRecord(
            spec: spec, joinSeq: UInt64(truncatingIfNeeded: joinSeq), registeredAtMillis: row["registered_at_ms"],
            standing: standing, departedAtMillis: row["departed_at_ms"])
    }

    // MARK: Writing

    /// Applies a batch of changes in one transaction, in order.
    public func commit(_ changes: [StateChange]) async throws(StorageError) {
        do {
            try await pool.write { db in
                for change in changes {
                    switch change {
                    case .membership(let membership):
                        try Self.apply(membership, to: db)
                    }
                }
            }
        } catch {
            throw StorageError(.unavailable, "cannot write the state database: \(error)")
        }
    }

    private static func apply(_ change: MembershipChange, to db: Database) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for record in change.upserted {
            let spec = record.spec
            let labels = String(decoding: try encoder.encode(spec.labels), as: UTF8.self)
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO worker
                        (id, task_id, host, port, gpu_count, labels, join_seq, registered_at_ms, standing, departed_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    spec.id.rawValue, spec.taskID.rawValue, spec.host, spec.port, spec.gpuCount, labels,
                    Int64(truncatingIfNeeded: record.joinSeq), record.registeredAtMillis, record.standing.rawValue,
                    record.departedAtMillis,
                ])
        }
        for id in change.forgotten {
            try db.execute(sql: "DELETE FROM worker WHERE id = ?", arguments: [id.rawValue])
        }
        for (task, epoch) in change.epochs {
            try db.execute(
                sql: "INSERT OR REPLACE INTO task_membership (task_id, epoch) VALUES (?, ?)",
                arguments: [task.rawValue, Int64(truncatingIfNeeded: epoch)])
        }
    }
}
