import Checkpoint
import RuntimeCore
import Testing

/// A task of `world` ranks (workers w0, w1, ...) saving checkpoints, with a manual clock.
private struct Fixture {
    var catalog: CheckpointCatalog
    var now: Duration = .zero
    var wallMs: Int64 = 1_700_000_000_000
    let task = TaskID.default
    let world: Int

    init(world: Int = 3, timeout: Duration = .seconds(60), retention: RetentionPolicy = .default) {
        self.world = world
        catalog = CheckpointCatalog(timeout: timeout, retention: retention, now: .zero)
    }

    func worker(_ rank: Int) -> WorkerID { try! WorkerID("w\(rank)") }

    func opening(rank: Int, step: Int64, epoch: Int64 = 0, metrics: [String: Double] = [:]) -> CheckpointCatalog.Opening
    {
        .init(
            task: task, step: step, epoch: epoch, worker: worker(rank), rank: rank, worldSize: world,
            membershipEpoch: 7, metrics: metrics)
    }

    @discardableResult
    mutating func open(rank: Int, step: Int64, epoch: Int64 = 0, metrics: [String: Double] = [:]) throws
        -> CheckpointRecord
    {
        try catalog.open(
            opening(rank: rank, step: step, epoch: epoch, metrics: metrics), position: DataPosition(), now: now,
            wallMs: wallMs
        ).record
    }

    mutating func report(
        _ id: CheckpointID, rank: Int, size: Int64 = 100, sha: String = String(repeating: "a", count: 64)
    )
        throws -> [CheckpointCatalog.Directive]
    {
        try catalog.report(id, worker: worker(rank), part: .init(sizeBytes: size, sha256: sha, writeSeconds: 0.5))
            .directives
    }

    /// Opens and reports every rank of a step, then confirms the manifest; returns the committed record.
    mutating func commitStep(_ step: Int64, metrics: [String: Double] = [:]) throws -> [CheckpointCatalog.Directive] {
        var id: CheckpointID?
        for rank in 0..<world { id = try open(rank: rank, step: step, metrics: metrics).id }
        for rank in 0..<world { _ = try report(#require(id), rank: rank) }
        return catalog.committed(try #require(id), atMs: wallMs)
    }
}

private func persisted(_ directives: [CheckpointCatalog.Directive]) -> [CheckpointRecord] {
    directives.compactMap { if case .persist(let record) = $0 { record } else { nil } }
}

@Suite("Checkpoint two-phase commit")
struct CheckpointCatalogTests {
    @Test("ranks join one attempt, get their own keys, and the last report asks for the commit")
    func commit() throws {
        var f = Fixture()
        let first = try f.open(rank: 1, step: 1000, epoch: 2, metrics: ["loss": 0.5])
        #expect(first.id.description == "default/step-000000001000-a1")
        #expect(first.worldSize == 3 && first.status == .pending)
        #expect(first.id.partKey(rank: 1).rawValue == "default/step-000000001000-a1/rank-00001.part")
        try f.open(rank: 0, step: 1000, epoch: 2, metrics: ["loss": 0.25, "acc": 0.9])
        try f.open(rank: 2, step: 1000, epoch: 2)
        #expect(try f.open(rank: 2, step: 1000, epoch: 2).opened.count == 3, "opening again is idempotent")

        var directives = try f.report(first.id, rank: 0)
        #expect(persisted(directives).count == 1)
        directives = try f.report(first.id, rank: 2)
        #expect(!directives.contains { if case .commit = $0 { true } else { false } })
        directives = try f.report(first.id, rank: 1)
        let commit = directives.compactMap { if case .commit(let record) = $0 { record } else { nil } }
        #expect(commit.count == 1 && commit.first?.parts.count == 3)
        #expect(f.catalog.committed(task: f.task) == nil, "invisible until the manifest is durable")

        f.wallMs += 250
        let done = f.catalog.committed(first.id, atMs: f.wallMs)
        let record = try #require(f.catalog.committed(task: f.task))
        #expect(record.status == .committed && record.committedAtMs == f.wallMs)
        #expect(record.metrics == ["loss": 0.25, "acc": 0.9], "the lowest rank's metrics win")
        #expect(done.contains(.settled(record)))
        #expect(f.catalog.committed(task: f.task, step: 1000)?.id == first.id)
        #expect(f.catalog.committed(task: f.task, step: 999) == nil)
        #expect(f.catalog.committed(first.id, atMs: f.wallMs).isEmpty, "a second confirmation is a no-op")
    }

    @Test("a duplicate report is idempotent; a different one for the same rank is refused and changes nothing")
    func duplicates() throws {
        var f = Fixture(world: 2)
        let id = try f.open(rank: 0, step: 5).id
        try f.open(rank: 1, step: 5)
        #expect(!persisted(try f.report(id, rank: 0)).isEmpty)
        #expect(try f.report(id, rank: 0).isEmpty)
        let error = #expect(throws: CheckpointError.self) { try f.report(id, rank: 0, size: 101) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("already reported 100 bytes") == true)
        #expect(f.catalog.record(id)?.parts[0]?.sizeBytes == 100)
    }

    @Test("reports for unknown checkpoints, or from workers that did not open it, are refused")
    func unknown() throws {
        var f = Fixture(world: 2)
        let ghost = CheckpointID(task: f.task, step: 9, attempt: 1)
        #expect(
            throws: CheckpointError(
                .notFound, "no checkpoint default/step-000000000009-a1: open it with SaveCheckpoint first")
        ) {
            try f.report(ghost, rank: 0)
        }
        let id = try f.open(rank: 0, step: 9).id
        let error = #expect(throws: CheckpointError.self) { try f.report(id, rank: 1) }
        #expect(error?.code == .failedPrecondition && error?.message.contains("has not opened") == true)
    }

    @Test("a rank that joined after the opening, or that disagrees on the epoch, is refused without changing anything")
    func mismatch() throws {
        var f = Fixture(world: 2)
        let id = try f.open(rank: 0, step: 3, epoch: 1).id
        var late = f.opening(rank: 2, step: 3, epoch: 1)
        late.worldSize = 3
        let joined = #expect(throws: CheckpointError.self) {
            try f.catalog.open(late, position: DataPosition(), now: f.now, wallMs: f.wallMs)
        }
        #expect(joined?.code == .failedPrecondition && joined?.message.contains("world size 2") == true)
        let epoch = #expect(throws: CheckpointError.self) { try f.open(rank: 1, step: 3, epoch: 2) }
        #expect(epoch?.code == .invalidArgument)
        #expect(
            epoch?.message
                == "epoch must be the same on every rank saving step 3: checkpoint \(id) was opened at epoch 1 (got 2)")
        #expect(f.catalog.record(id)?.opened.count == 1 && f.catalog.record(id)?.status == .pending)
    }

    @Test("a failed part aborts at once, naming the rank; its objects are deleted and the step can be saved again")
    func failure() throws {
        var f = Fixture(world: 2)
        let id = try f.open(rank: 0, step: 10).id
        try f.open(rank: 1, step: 10)
        _ = try f.report(id, rank: 0)
        let (record, directives) = try f.catalog.fail(id, worker: f.worker(1), reason: "disk full")
        #expect(record.status == .aborted)
        #expect(record.abortReason == "rank 1 (worker w1) could not write its part: disk full")
        #expect(directives.contains(.deleteObjects(record.id, record.objectKeys)))
        #expect(directives.contains(.settled(record)))
        let late = #expect(throws: CheckpointError.self) { try f.report(id, rank: 1) }
        #expect(late?.message.contains("was aborted (rank 1 (worker w1) could not write its part: disk full)") == true)
        let retry = try f.open(rank: 0, step: 10)
        #expect(retry.id.attempt == 2 && retry.id.description == "default/step-000000000010-a2")
    }

    @Test("the deadline aborts a checkpoint, naming the ranks whose parts are missing")
    func timeout() throws {
        var f = Fixture(world: 3, timeout: .seconds(60))
        let id = try f.open(rank: 0, step: 1).id
        try f.open(rank: 1, step: 1)
        _ = try f.report(id, rank: 0)
        f.now = .seconds(59)
        #expect(f.catalog.onTick(now: f.now).isEmpty)
        f.now = .seconds(60)
        let directives = f.catalog.onTick(now: f.now)
        let record = try #require(f.catalog.record(id))
        #expect(record.status == .aborted)
        #expect(
            record.abortReason == "timed out after 60.0 seconds waiting for the parts of rank 1 (worker w1), rank 2")
        #expect(directives == [.persist(record), .settled(record), .deleteObjects(record.id, record.objectKeys)])
    }

    @Test("a checkpoint whose manifest is being written is neither timed out nor aborted by a departure")
    func committingIsProtected() throws {
        var f = Fixture(world: 1)
        let id = try f.open(rank: 0, step: 1).id
        _ = try f.report(id, rank: 0)
        #expect(f.catalog.committingIDs == [id])
        #expect(f.catalog.onTick(now: .seconds(3600)).isEmpty)
        #expect(f.catalog.onMembershipChange(task: f.task, members: [], reason: "w0 left").isEmpty)
        #expect(!f.catalog.committed(id, atMs: 1).isEmpty)
        #expect(f.catalog.record(id)?.status == .committed)
    }

    @Test("a failed manifest write aborts; a departure (not a join) aborts the pending checkpoints of its task")
    func departures() throws {
        var f = Fixture(world: 1)
        let id = try f.open(rank: 0, step: 1).id
        _ = try f.report(id, rank: 0)
        _ = f.catalog.commitFailed(id, reason: "S3 said 503")
        #expect(f.catalog.record(id)?.abortReason == "writing the manifest failed: S3 said 503")

        var g = Fixture(world: 2)
        let a = try g.open(rank: 0, step: 2).id
        var other = g.opening(rank: 0, step: 2)
        other.task = try TaskID("other")
        let b = try g.catalog.open(other, position: DataPosition(), now: g.now, wallMs: g.wallMs).record.id
        _ = try g.catalog.open(g.opening(rank: 1, step: 2), position: DataPosition(), now: g.now, wallMs: g.wallMs)
        let joined = g.catalog.onMembershipChange(
            task: g.task, members: [g.worker(0), g.worker(1), try WorkerID("w9")], reason: "w9 joined as rank 2")
        #expect(joined.isEmpty, "a join keeps every rank")
        _ = g.catalog.onMembershipChange(task: g.task, members: [g.worker(1)], reason: "w0 was declared dead")
        #expect(
            g.catalog.record(a)?.abortReason
                == "the membership changed before the checkpoint was whole (w0 was declared dead); ranks no longer held "
                + "as opened: rank 0 (worker w0), rank 1 (worker w1)")
        #expect(g.catalog.record(b)?.status == .pending, "other tasks are untouched")

        var h = Fixture(world: 3)
        let c = try h.open(rank: 0, step: 1).id
        _ = h.catalog.onMembershipChange(task: h.task, members: [h.worker(0), h.worker(1)], reason: "w2 left")
        #expect(h.catalog.record(c)?.abortReason?.hasSuffix("ranks no longer held as opened: rank 2") == true)
    }

    @Test("after a rollback, a step saved again is a new attempt, and latest and retention follow commit order")
    func rollback() throws {
        var f = Fixture(world: 1, retention: RetentionPolicy(keepLast: 2, keepBest: 0, metric: "", mode: .min))
        for step: Int64 in [10, 20] {
            _ = try f.commitStep(step)
            f.wallMs += 1000
        }
        // The job rolls back to step 10 and trains on: steps 15 and 20 of the new run.
        _ = try f.commitStep(15)
        f.wallMs += 1000
        let again = try f.open(rank: 0, step: 20)
        #expect(again.id.description == "default/step-000000000020-a2")
        _ = try f.report(again.id, rank: 0)
        _ = f.catalog.committed(again.id, atMs: f.wallMs)
        #expect(f.catalog.committed(task: f.task)?.id == again.id, "latest is the last committed")
        #expect(f.catalog.committed(task: f.task, step: 20)?.id == again.id)
        let status = Dictionary(uniqueKeysWithValues: f.catalog.all.map { ($0.id.description, $0.status) })
        #expect(
            status == [
                "default/step-000000000010-a1": .deleted, "default/step-000000000020-a1": .deleted,
                "default/step-000000000015-a1": .committed, "default/step-000000000020-a2": .committed,
            ])
    }

    @Test("restoring keeps records and gives pending ones a full timeout from the restart")
    func restore() throws {
        var f = Fixture(world: 2, timeout: .seconds(30))
        _ = try f.commitStep(1)
        let pendingID = try f.open(rank: 0, step: 2).id
        let restored = CheckpointCatalog(
            timeout: .seconds(30), retention: .default, restoring: f.catalog.all, now: .seconds(1000))
        #expect(restored.all == f.catalog.all)
        #expect(restored.deadline(of: pendingID) == .seconds(1030))
        #expect(restored.pendingCheckpoint(task: f.task, step: 2) == pendingID)
        var copy = restored
        let again = try copy.open(f.opening(rank: 0, step: 1_000), position: DataPosition(), now: .zero, wallMs: 0)
        #expect(again.record.id.attempt == 1)
        let resaved = try copy.open(f.opening(rank: 0, step: 1), position: DataPosition(), now: .zero, wallMs: 0)
        #expect(resaved.record.id.attempt == 2, "attempt numbers survive the restart")
    }

    @Test("committing applies retention: older checkpoints are marked deleted and their objects removed")
    func retention() throws {
        var f = Fixture(world: 1, retention: RetentionPolicy(keepLast: 2, keepBest: 1, metric: "loss", mode: .min))
        let losses: [Double] = [0.9, 0.1, 0.5, 0.7, 0.6]
        var deletedKeys: [ObjectKey] = []
        for (index, loss) in losses.enumerated() {
            for directive in try f.commitStep(Int64(index + 1), metrics: ["loss": loss]) {
                if case .deleteObjects(_, let keys) = directive { deletedKeys += keys }
            }
        }
        let byStep = Dictionary(uniqueKeysWithValues: f.catalog.all.map { ($0.id.step, $0.status) })
        #expect(byStep == [1: .deleted, 2: .committed, 3: .deleted, 4: .committed, 5: .committed])
        #expect(
            deletedKeys.map(\.rawValue).sorted() == [
                "default/step-000000000001-a1/manifest.json", "default/step-000000000001-a1/rank-00000.part",
                "default/step-000000000003-a1/manifest.json", "default/step-000000000003-a1/rank-00000.part",
            ])
    }

    @Test("the data position overlays each rank's own shards on the snapshot taken at the opening")
    func position() throws {
        var f = Fixture(world: 2)
        let key = DataPosition.EpochKey(dataset: "digits", epoch: 0)
        let snapshot = DataPosition(epochs: [
            key: [0: .init(consumed: 10, done: true), 1: .init(consumed: 3, done: false)]
        ])
        let own = DataPosition(epochs: [key: [1: .init(consumed: 7, done: false)]])
        _ = try f.catalog.open(f.opening(rank: 0, step: 1), position: snapshot, now: .zero, wallMs: 0)
        let record = try f.catalog.open(f.opening(rank: 1, step: 1), position: own, now: .zero, wallMs: 0).record
        #expect(
            record.position.epochs[key] == [0: .init(consumed: 10, done: true), 1: .init(consumed: 7, done: false)])
    }
}

@Suite("Checkpoint ids")
struct CheckpointIDTests {
    @Test("ids round-trip through their text")
    func roundTrip() throws {
        let id = CheckpointID(task: try TaskID("job-1.a"), step: 42, attempt: 3)
        #expect(id.description == "job-1.a/step-000000000042-a3")
        #expect(try CheckpointID(parsing: id.description) == id)
        #expect(id.manifestKey.rawValue == "job-1.a/step-000000000042-a3/manifest.json")
    }

    @Test(
        "malformed ids are rejected",
        arguments: [
            "", "default", "default/step-1-a1", "../step-000000000001-a1", "default/step-000000000001-a0",
            "default/step-000000000001", "default/step--00000000001-a1", "a/b/step-000000000001-a1",
            "default/step-000000000001-a1/x", "default/step-0000000000001-a1",
        ])
    func malformed(text: String) {
        let error = #expect(throws: CheckpointError.self) { try CheckpointID(parsing: text) }
        #expect(error?.code == .invalidArgument)
    }
}

/// What bounds a task's checkpoint records: the pending cap and the retired records kept.
@Suite("Checkpoint bounds")
struct CheckpointBoundsTests {
    @Test("a task holds at most maxPendingPerTask pending checkpoints; one that ends makes room")
    func pendingCap() throws {
        var f = Fixture(world: 2)
        f.catalog = CheckpointCatalog(timeout: .seconds(60), retention: .default, maxPendingPerTask: 3, now: .zero)
        let first = try f.open(rank: 0, step: 10)
        try f.open(rank: 0, step: 20)
        try f.open(rank: 0, step: 30)
        let refused = #expect(throws: CheckpointError.self) { try f.open(rank: 0, step: 40) }
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message.contains("already has 3 checkpoints pending (steps 10, 20, 30)") == true)
        #expect(refused?.message.contains("--checkpoint-max-pending") == true)
        #expect(f.catalog.pendingCheckpoint(task: f.task, step: 40) == nil, "the refusal changed nothing")
        // Joining a pending one is not opening another.
        try f.open(rank: 1, step: 20)
        _ = try f.catalog.fail(first.id, worker: f.worker(0), reason: "disk full")
        #expect(try f.open(rank: 0, step: 40).status == .pending)
        // Time-outs make room too.
        f.now = .seconds(61)
        _ = f.catalog.onTick(now: f.now)
        for step: Int64 in [50, 60, 70] { try f.open(rank: 0, step: step) }
    }

    @Test("aborted and retired records drop their metadata, and beyond 64 per task the oldest are forgotten")
    func retiredRecordsAreBounded() throws {
        var f = Fixture(world: 1)
        var forgotten: [CheckpointID] = []
        var deleted: [CheckpointID] = []
        for step in Int64(1)...100 {
            let opening = CheckpointCatalog.Opening(
                task: f.task, step: step, epoch: 0, worker: f.worker(0), rank: 0, worldSize: 1, membershipEpoch: 7,
                metrics: ["loss": 1], metadata: ["blob": String(repeating: "x", count: 4096)])
            let id = try f.catalog.open(opening, position: DataPosition(), now: f.now, wallMs: f.wallMs + step).record
                .id
            for directive in try f.catalog.fail(id, worker: f.worker(0), reason: "test").directives {
                switch directive {
                case .forget(let id): forgotten.append(id)
                case .deleteObjects(let id, _): deleted.append(id)
                default: break
                }
            }
        }
        let kept = f.catalog.all
        #expect(kept.count == CheckpointCatalog.retiredKeptPerTask)
        #expect(kept.map(\.id.step) == Array(37...100), "the newest are kept")
        #expect(kept.allSatisfy { $0.status == .aborted && $0.metadata.isEmpty && $0.rankMetrics.isEmpty })
        #expect(forgotten.map(\.step) == Array(1...36))
        #expect(Set(forgotten).isSubset(of: Set(deleted)), "a forgotten checkpoint's objects are deleted once more")
        // A forgotten step may be saved again.
        #expect(try f.open(rank: 0, step: 1).id.attempt == 1)

        // A restart with more retired records than that (an older version kept them all) forgets the oldest.
        var restored = CheckpointCatalog(
            timeout: .seconds(60), retention: .default, restoring: kept + persistedAborted(f, steps: 101...110),
            now: .zero)
        let directives = restored.resumeCommits()
        let forgottenOnRestart = directives.compactMap { if case .forget(let id) = $0 { id } else { nil } }
        #expect(forgottenOnRestart.map(\.step) == Array(37...46))
        #expect(restored.all.count == CheckpointCatalog.retiredKeptPerTask)
    }

    private func persistedAborted(_ f: Fixture, steps: ClosedRange<Int64>) -> [CheckpointRecord] {
        steps.map { step in
            var record = CheckpointRecord(
                id: CheckpointID(task: f.task, step: step, attempt: 1), epoch: 0, worldSize: 1, membershipEpoch: 7,
                createdAtMs: f.wallMs + step, position: DataPosition())
            record.status = .aborted
            return record
        }
    }
}
