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
        // A ledger's changes as compact rows in the order they were made (LedgerDeltaCoding), replacing a row per
        // shard; rows of ledger_shard written by earlier versions are read as a ledger's first change.
        migrator.registerMigration("v6-ledger-deltas") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ledger_delta (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        task_id TEXT NOT NULL,
                        dataset TEXT NOT NULL,
                        epoch INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        payload BLOB NOT NULL
                    );
                    CREATE INDEX ledger_delta_by_ledger ON ledger_delta (task_id, dataset, epoch, seq);
                    """)
        }
        // The digest of each worker's secret (never the secret): workers keep acting as themselves across a restart
        // of the coordinator. NULL for rows written before: such a worker is claimed by registering again.
        migrator.registerMigration("v7-worker-secret-digest") { db in
            try db.execute(sql: "ALTER TABLE worker ADD COLUMN secret_sha256 BLOB")
        }
        return migrator
    }

    /// A ledger's rows are folded into one when there are more than this many...
    static let foldAfterRows = 256
    /// ...and the rows after the first hold at least half its bytes (so folding costs at most three times what was
    /// written since the last fold), or in any case beyond this many rows.
    static let foldAlwaysAfterRows = 65_536

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
                    guard let spec = datasets.first(where: { $0.spec.name == key.dataset })?.spec else { continue }
                    let (snapshot, deltas) = try Self.changes(of: key, spec: spec, in: db)
                    ledgers.append(
                        PersistedLedger(
                            header: header, members: try Self.workers(row["members"]),
                            membershipEpoch: UInt64(truncatingIfNeeded: epoch), snapshot: snapshot, deltas: deltas))
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

    /// A ledger's newest snapshot (nil when it has none) and its changes after it, in order. Without a snapshot: rows
    /// of the old per-shard table first, then its compact rows. Rows before the newest snapshot are ignored (a
    /// snapshot's write deletes them in the same transaction; ignoring them keeps that an optimisation).
    private static func changes(of key: LedgerKey, spec: DatasetSpec, in db: Database) throws -> (
        LedgerSnapshot?, [LedgerDelta]
    ) {
        let arguments: StatementArguments = [key.task.rawValue, key.dataset, key.epoch]
        guard
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT seq, payload FROM ledger_delta WHERE task_id = ? AND dataset = ? AND epoch = ?
                        AND kind = 'snapshot' ORDER BY seq DESC LIMIT 1
                    """,
                arguments: arguments)
        else { return (nil, try deltas(of: key, spec: spec, in: db)) }
        let seq: Int64 = row["seq"]
        let payload: Data = row["payload"]
        let snapshot = try LedgerSnapshotCoding.decode(Array(payload), spec: spec)
        return (snapshot, try compactDeltas(of: key, after: seq, spec: spec, in: db))
    }

    /// A ledger's changes in order: rows of the old per-shard table first, then its compact rows.
    private static func deltas(of key: LedgerKey, spec: DatasetSpec, in db: Database) throws -> [LedgerDelta] {
        let arguments: StatementArguments = [key.task.rawValue, key.dataset, key.epoch]
        var deltas: [LedgerDelta] = []
        let old = try Row.fetchAll(
            db, sql: "SELECT * FROM ledger_shard WHERE task_id = ? AND dataset = ? AND epoch = ?", arguments: arguments
        ).map(Self.shardRecord).filter { record in
            // Rows of earlier versions, checked as the compact rows are: a record no ledger could hold is dropped.
            (0..<spec.shardCount).contains(record.shard) && record.consumed >= 0
                && record.consumed <= Int64(spec.sampleRange(ofShard: record.shard).count)
        }
        if !old.isEmpty { deltas.append(.records(old)) }
        return deltas + (try compactDeltas(of: key, after: -1, spec: spec, in: db))
    }

    /// A ledger's compact rows after the sequence number `after`, in order.
    private static func compactDeltas(of key: LedgerKey, after: Int64, spec: DatasetSpec, in db: Database) throws
        -> [LedgerDelta]
    {
        var deltas: [LedgerDelta] = []
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT kind, payload FROM ledger_delta WHERE task_id = ? AND dataset = ? AND epoch = ? AND seq > ?
                    ORDER BY seq
                """,
            arguments: [key.task.rawValue, key.dataset, key.epoch, after])
        while let row = try rows.next() {
            let kind: String = row["kind"]
            let payload: Data = row["payload"]
            switch kind {
            case "records": deltas.append(.records(try LedgerDeltaCoding.decodeRecords(Array(payload), spec: spec)))
            case "moved": deltas.append(.moved(try LedgerDeltaCoding.decodeMove(Array(payload), spec: spec)))
            default:
                throw StorageError(
                    .internal,
                    "unknown ledger change kind \(kind) in the state database: another version of the coordinator "
                        + "wrote it; run that version")
            }
        }
        return deltas
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
                var ledgerRecords = LedgerRecordBatch()
                for change in changes {
                    switch change {
                    case .membership(let membership):
                        try Self.apply(membership, to: db)
                    case .data(.shardsChanged(let key, let records)):
                        ledgerRecords.add(records, to: key)
                    case .data(let data):
                        // A ledger's records written before its other changes, in the order they were made.
                        if let key = data.ledgerKey { try Self.write(ledgerRecords.take(key), of: key, to: db) }
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
                for (key, records) in ledgerRecords.takeAll() { try Self.write(records, of: key, to: db) }
                let ledgers = changes.compactMap { change in
                    if case .data(let data) = change { data.ledgerKey } else { nil }
                }
                for key in Set(ledgers) { try Self.foldIfDue(key, in: db) }
            }
        } catch {
            throw StorageError(.unavailable, "cannot write the state database: \(error)")
        }
    }

    /// Appends one compact row of records to a ledger's changes.
    private static func write(_ records: [ShardRecord], of key: LedgerKey, to db: Database) throws {
        guard !records.isEmpty else { return }
        try append(kind: "records", payload: LedgerDeltaCoding.encode(records), of: key, to: db)
    }

    private static func append(kind: String, payload: [UInt8], of key: LedgerKey, to db: Database) throws {
        try db.execute(
            sql: "INSERT INTO ledger_delta (task_id, dataset, epoch, kind, payload) VALUES (?, ?, ?, ?, ?)",
            arguments: [key.task.rawValue, key.dataset, key.epoch, kind, Data(payload)])
    }

    /// Folds a ledger's rows into one (``LedgerDeltaCoding/fold(_:)``) when they pile up, so the database holds a
    /// few bytes per shard touched, not per change.
    private static func foldIfDue(_ key: LedgerKey, in db: Database) throws {
        let arguments: StatementArguments = [key.task.rawValue, key.dataset, key.epoch]
        let ledgerFilter = "task_id = ? AND dataset = ? AND epoch = ?"
        guard
            let counts = try Row.fetchOne(
                db,
                sql:
                    "SELECT COUNT(*) AS rows, COALESCE(SUM(length(payload)), 0) AS bytes FROM ledger_delta WHERE \(ledgerFilter)",
                arguments: arguments)
        else { return }
        let rows: Int = counts["rows"]
        let bytes: Int = counts["bytes"]
        guard rows > foldAfterRows else { return }
        // A ledger with a snapshot is folded by the engine writing a newer snapshot (this fold replays changes on the
        // initial placement, which the changes after a snapshot do not start from).
        let snapshots =
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM ledger_delta WHERE \(ledgerFilter) AND kind = 'snapshot'",
                arguments: arguments) ?? 0
        guard snapshots == 0 else { return }
        let first =
            try Int.fetchOne(
                db, sql: "SELECT length(payload) FROM ledger_delta WHERE \(ledgerFilter) ORDER BY seq LIMIT 1",
                arguments: arguments) ?? 0
        guard bytes - first >= first / 2 || rows > foldAlwaysAfterRows else { return }
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM dataset WHERE name = ?", arguments: [key.dataset])
        else { return }
        let seed: Int64 = row["seed"]
        let spec = try DatasetSpec(
            name: row["name"], totalSamples: row["total_samples"], shardSize: row["shard_size"],
            shuffle: row["shuffle"],
            seed: UInt64(bitPattern: seed))
        // A row this version cannot read is left as it is (a restart reports it); folding is only an optimisation.
        guard let deltas = try? deltas(of: key, spec: spec, in: db) else { return }
        let folded = LedgerDeltaCoding.fold(deltas)
        for table in ["ledger_shard", "ledger_delta"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE \(ledgerFilter)", arguments: arguments)
        }
        for delta in folded {
            switch delta {
            case .records(let records): try write(records, of: key, to: db)
            case .moved(let move):
                try append(kind: "moved", payload: LedgerDeltaCoding.encode(move), of: key, to: db)
            }
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
            try write(records, of: key, to: db)
        case .shardsMoved(let key, let move):
            try append(kind: "moved", payload: LedgerDeltaCoding.encode(move), of: key, to: db)
        case .ledgerSnapshot(let key, let snapshot):
            // Everything written before is in the snapshot: one transaction replaces it, so a crash leaves either the
            // old rows or the snapshot.
            for table in ["ledger_shard", "ledger_delta"] {
                try db.execute(
                    sql: "DELETE FROM \(table) WHERE task_id = ? AND dataset = ? AND epoch = ?",
                    arguments: [key.task.rawValue, key.dataset, key.epoch])
            }
            try append(kind: "snapshot", payload: LedgerSnapshotCoding.encode(snapshot), of: key, to: db)
        case .ledgerDropped(let key):
            for table in ["ledger", "ledger_shard", "ledger_delta"] {
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
