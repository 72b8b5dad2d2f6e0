public import Checkpoint
public import DataShard
import Foundation
import GRDB
public import RuntimeCore

/// One durable change the engine asks the store to make. Later features add cases (checkpoints, tasks).
public enum StateChange: Sendable, Hashable {
    /// Worker records and task epochs.
    case membership(MembershipChange)
    /// Datasets and shard ledgers.
    case data(DataChange)
    /// A checkpoint record, written whole.
    case checkpoint(CheckpointRecord)
    /// A checkpoint record deleted (a retired one beyond what its task keeps).
    case checkpointForgotten(CheckpointID)
    /// A task record, written whole.
    case task(TaskRecord)
}

/// The durable membership read back at start-up.
public struct PersistedMembership: Sendable, Hashable {
    /// Every retained worker record.
    public var records: [WorkerRecord]
    /// Each task's membership epoch.
    public var epochs: [TaskID: UInt64]
}

/// The durable data plane read back at start-up.
public struct PersistedData: Sendable {
    /// Registered datasets.
    public var datasets: [DatasetRecord]
    /// Retained ledgers, each with the members it follows and the records of the shards that changed since its
    /// creation.
    public var ledgers: [PersistedLedger]

    /// Creates the state (empty by default: a fresh coordinator).
    public init(datasets: [DatasetRecord] = [], ledgers: [PersistedLedger] = []) {
        self.datasets = datasets
        self.ledgers = ledgers
    }
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
        migrator.registerMigration("v2-data") { db in
            try db.execute(
                sql: """
                    CREATE TABLE dataset (
                        name TEXT PRIMARY KEY NOT NULL,
                        total_samples INTEGER NOT NULL,
                        shard_size INTEGER NOT NULL,
                        shuffle INTEGER NOT NULL,
                        seed INTEGER NOT NULL,
                        registered_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE ledger (
                        task_id TEXT NOT NULL,
                        dataset TEXT NOT NULL,
                        epoch INTEGER NOT NULL,
                        initial_members TEXT NOT NULL,
                        initial_membership_epoch INTEGER NOT NULL,
                        members TEXT NOT NULL,
                        membership_epoch INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (task_id, dataset, epoch)
                    );
                    CREATE TABLE ledger_shard (
                        task_id TEXT NOT NULL,
                        dataset TEXT NOT NULL,
                        epoch INTEGER NOT NULL,
                        shard INTEGER NOT NULL,
                        owner TEXT,
                        lease_epoch INTEGER NOT NULL,
                        consumed INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        PRIMARY KEY (task_id, dataset, epoch, shard)
                    );
                    """)
        }
        migrator.registerMigration("v3-checkpoints") { db in
            // The record is stored whole as JSON: it changes as a unit and is only read back at start-up.
            try db.execute(
                sql: """
                    CREATE TABLE checkpoint (
                        id TEXT PRIMARY KEY NOT NULL,
                        task_id TEXT NOT NULL,
                        step INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        record TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v4-tasks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE task (
                        id TEXT PRIMARY KEY NOT NULL,
                        status TEXT NOT NULL,
                        record TEXT NOT NULL
                    );
                    """)
        }
        // Which process registered each worker, so that a restarted process is told apart after a restart too.
        migrator.registerMigration("v5-worker-incarnation") { db in
            try db.execute(sql: "ALTER TABLE worker ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''")
        }
        // The digest of each worker's secret (never the secret): workers keep acting as themselves across a restart
        // of the coordinator. NULL for rows written before: such a worker is claimed by registering again.
        migrator.registerMigration("v6-worker-secret-digest") { db in
            try db.execute(sql: "ALTER TABLE worker ADD COLUMN secret_sha256 BLOB")
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

    /// Reads the registered datasets and the retained ledgers with their changed shards.
    public func loadData() throws(StorageError) -> PersistedData {
        do {
            return try pool.read { db in
                let datasets = try Row.fetchAll(db, sql: "SELECT * FROM dataset ORDER BY name").map { row in
                    let seed: Int64 = row["seed"]
                    let spec = try DatasetSpec(
                        name: row["name"], totalSamples: row["total_samples"], shardSize: row["shard_size"],
                        shuffle: row["shuffle"], seed: UInt64(bitPattern: seed))
                    return DatasetRecord(spec: spec, registeredAtMillis: row["registered_at_ms"])
                }
                var ledgers: [PersistedLedger] = []
                for row in try Row.fetchAll(db, sql: "SELECT * FROM ledger ORDER BY task_id, dataset, epoch") {
                    let key = LedgerKey(task: try TaskID(row["task_id"]), dataset: row["dataset"], epoch: row["epoch"])
                    let initialEpoch: Int64 = row["initial_membership_epoch"]
                    let epoch: Int64 = row["membership_epoch"]
                    let header = LedgerHeader(
                        key: key, initialMembers: try Self.workers(row["initial_members"]),
                        initialMembershipEpoch: UInt64(truncatingIfNeeded: initialEpoch),
                        createdAtMillis: row["created_at_ms"])
                    let records = try Row.fetchAll(
                        db, sql: "SELECT * FROM ledger_shard WHERE task_id = ? AND dataset = ? AND epoch = ?",
                        arguments: [key.task.rawValue, key.dataset, key.epoch]
                    ).map(Self.shardRecord)
                    ledgers.append(
                        PersistedLedger(
                            header: header, members: try Self.workers(row["members"]),
                            membershipEpoch: UInt64(truncatingIfNeeded: epoch), records: records))
                }
                return PersistedData(datasets: datasets, ledgers: ledgers)
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.internal, "the state database holds a row this coordinator cannot read: \(error)")
        }
    }

    /// Reads every task record.
    public func loadTasks() throws(StorageError) -> [TaskRecord] {
        try loadJSONRecords(TaskRecord.self, table: "task", what: "tasks")
    }

    /// Reads every checkpoint record.
    public func loadCheckpoints() throws(StorageError) -> [CheckpointRecord] {
        try loadJSONRecords(CheckpointRecord.self, table: "checkpoint", what: "checkpoints")
    }

    /// The records of a table that stores each record whole, as JSON in its `record` column.
    private func loadJSONRecords<Record: Decodable>(_: Record.Type, table: String, what: String) throws(StorageError)
        -> [Record]
    {
        do {
            return try pool.read { db in
                try String.fetchAll(db, sql: "SELECT record FROM \(table) ORDER BY id").map { json in
                    try JSONDecoder().decode(Record.self, from: Data(json.utf8))
                }
            }
        } catch {
            throw StorageError(.unavailable, "cannot read \(what) from the state database: \(error)")
        }
    }

    private static func workers(_ json: String) throws -> [WorkerID] {
        try JSONDecoder().decode([String].self, from: Data(json.utf8)).map { try WorkerID($0) }
    }

    private static func workersJSON(_ workers: [WorkerID]) throws -> String {
        String(decoding: try JSONEncoder().encode(workers.map(\.rawValue)), as: UTF8.self)
    }

    private static func shardRecord(_ row: Row) throws -> ShardRecord {
        let stateName: String = row["state"]
        guard let state = ShardState(rawValue: stateName) else {
            throw StorageError(.internal, "unknown shard state \(stateName) in the state database")
        }
        let owner: String? = row["owner"]
        let leaseEpoch: Int64 = row["lease_epoch"]
        return ShardRecord(
            shard: row["shard"], owner: try owner.map { try WorkerID($0) },
            leaseEpoch: UInt64(truncatingIfNeeded: leaseEpoch), consumed: row["consumed"], state: state)
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
            gpuCount: row["gpu_count"], labels: labels, incarnation: row["incarnation"])
        return WorkerRecord(
            spec: spec, joinSeq: UInt64(truncatingIfNeeded: joinSeq), registeredAtMillis: row["registered_at_ms"],
            standing: standing, departedAtMillis: row["departed_at_ms"],
            secretDigest: (row["secret_sha256"] as Data?).map { SecretDigest(Array($0)) })
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
                    case .data(let data):
                        try Self.apply(data, to: db)
                    case .task(let record):
                        try db.execute(
                            sql: "INSERT OR REPLACE INTO task (id, status, record) VALUES (?, ?, ?)",
                            arguments: [
                                record.id, record.status.rawValue,
                                String(decoding: try JSONEncoder().encode(record), as: UTF8.self),
                            ])
                    case .checkpointForgotten(let id):
                        try db.execute(sql: "DELETE FROM checkpoint WHERE id = ?", arguments: [id.description])
                    case .checkpoint(let record):
                        try db.execute(
                            sql:
                                "INSERT OR REPLACE INTO checkpoint (id, task_id, step, status, record) VALUES (?, ?, ?, ?, ?)",
                            arguments: [
                                record.id.description, record.id.task.rawValue, record.id.step, record.status.rawValue,
                                String(decoding: try JSONEncoder().encode(record), as: UTF8.self),
                            ])
                    }
                }
            }
        } catch {
            throw StorageError(.unavailable, "cannot write the state database: \(error)")
        }
    }

    private static func apply(_ change: DataChange, to db: Database) throws {
        switch change {
        case .datasetRegistered(let record):
            let spec = record.spec
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO dataset (name, total_samples, shard_size, shuffle, seed, registered_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    spec.name, spec.totalSamples, spec.shardSize, spec.shuffle, Int64(bitPattern: spec.seed),
                    record.registeredAtMillis,
                ])
        case .ledgerCreated(let header):
            let members = try workersJSON(header.initialMembers)
            let epoch = Int64(truncatingIfNeeded: header.initialMembershipEpoch)
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO ledger (task_id, dataset, epoch, initial_members, initial_membership_epoch,
                        members, membership_epoch, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    header.key.task.rawValue, header.key.dataset, header.key.epoch, members, epoch, members, epoch,
                    header.createdAtMillis,
                ])
        case .ledgerMembers(let key, let members, let epoch):
            try db.execute(
                sql:
                    "UPDATE ledger SET members = ?, membership_epoch = ? WHERE task_id = ? AND dataset = ? AND epoch = ?",
                arguments: [
                    try workersJSON(members), Int64(truncatingIfNeeded: epoch), key.task.rawValue, key.dataset,
                    key.epoch,
                ])
        case .shardsChanged(let key, let records):
            let statement = try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO ledger_shard
                        (task_id, dataset, epoch, shard, owner, lease_epoch, consumed, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            for record in records {
                try statement.execute(arguments: [
                    key.task.rawValue, key.dataset, key.epoch, record.shard, record.owner?.rawValue,
                    Int64(truncatingIfNeeded: record.leaseEpoch), record.consumed, record.state.rawValue,
                ])
            }
        case .ledgerDropped(let key):
            for table in ["ledger", "ledger_shard"] {
                try db.execute(
                    sql: "DELETE FROM \(table) WHERE task_id = ? AND dataset = ? AND epoch = ?",
                    arguments: [key.task.rawValue, key.dataset, key.epoch])
            }
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
                        (id, task_id, host, port, gpu_count, labels, join_seq, registered_at_ms, standing, departed_at_ms,
                         incarnation, secret_sha256)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    spec.id.rawValue, spec.taskID.rawValue, spec.host, spec.port, spec.gpuCount, labels,
                    Int64(truncatingIfNeeded: record.joinSeq), record.registeredAtMillis, record.standing.rawValue,
                    record.departedAtMillis, spec.incarnation, record.secretDigest.map { Data($0.bytes) },
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
