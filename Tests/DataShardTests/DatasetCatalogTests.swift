import DataShard
import RuntimeCore
import Testing

@Suite("Dataset catalog")
struct DatasetCatalogTests {
    let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)

    func catalog(shards: Int64 = 4) throws -> (DatasetCatalog, [WorkerID]) {
        var catalog = DatasetCatalog()
        _ = try catalog.register(
            try DatasetSpec(name: "d", totalSamples: shards, shardSize: 1, shuffle: false, seed: 0), now: now)
        return (catalog, [try WorkerID("a")])
    }

    func key(_ epoch: Int64) -> LedgerKey { LedgerKey(task: .default, dataset: "d", epoch: epoch) }

    mutating func finish(_ catalog: inout DatasetCatalog, epoch: Int64, worker: WorkerID) throws {
        let leases = try catalog.assignment(
            key: key(epoch), worker: worker, members: [worker], membershipEpoch: 1, now: now
        ).leases
        for lease in leases {
            _ = try catalog.report(key: key(epoch), worker: worker, membershipEpoch: 1, shard: lease.shard, consumed: 1)
        }
    }

    @Test("a ledger checked out to be synced: reads see it as it was, nothing creates it again, a check-in persists")
    func checkOutForSync() throws {
        var (catalog, members) = try catalog(shards: 64)
        let b = try WorkerID("b")
        _ = try catalog.assignment(key: key(0), worker: members[0], members: members, membershipEpoch: 1, now: now)
        _ = try catalog.report(key: key(0), worker: members[0], membershipEpoch: 1, shard: 5, consumed: 1)
        let before = catalog.counts(of: key(0))

        // Only what the predicate selects leaves; nothing of another task.
        #expect(catalog.checkOutForSync(task: try TaskID("other"), where: { _, _ in true }).isEmpty)
        let out = catalog.checkOutForSync(task: .default, where: { _, ledger in ledger.shardCount >= 64 })
        #expect(out.map(\.0) == [key(0)])
        #expect(catalog.isSyncing(key(0)) && catalog.syncingLedgers(of: .default) == [key(0)])
        #expect(catalog.counts(of: key(0)) == before && catalog.ledgerCount == 1)
        #expect(catalog.summaries(of: "d").count == 1)
        #expect(try catalog.ledgerToCreate(key(0)) == nil)
        // Meanwhile a membership change does not touch it.
        #expect(catalog.onMembershipChange(task: .default, members: members + [b], membershipEpoch: 2).isEmpty)

        var ledger = try #require(out.first?.1)
        let synced = ledger.syncMembers(members + [b], membershipEpoch: 2)
        let directives = catalog.checkIn(ledger, key: key(0), synced: synced)
        #expect(!catalog.isSyncing(key(0)))
        #expect(directives.contains { if case .persist(.shardsMoved) = $0 { true } else { false } })
        let forB = try catalog.assignment(
            key: key(0), worker: b, members: members + [b], membershipEpoch: 2, now: now
        ).leases
        #expect(!forB.isEmpty && forB.allSatisfy { $0.shard != 5 })
        // Checked in twice: the second is dropped.
        #expect(catalog.checkIn(ledger, key: key(0), synced: synced).isEmpty)
    }

    @Test("a ledger dropped or rewound while it is synced stays dropped: its check-in is ignored")
    func checkInAfterDrop() throws {
        var (catalog, members) = try catalog(shards: 16)
        _ = try catalog.assignment(key: key(0), worker: members[0], members: members, membershipEpoch: 1, now: now)
        let out = catalog.checkOutForSync(task: .default, where: { _, _ in true })
        _ = try catalog.dropLedger(key(0))
        #expect(!catalog.isSyncing(key(0)) && catalog.counts(of: key(0)) == nil)
        #expect(catalog.checkIn(try #require(out.first?.1), key: key(0), synced: []).isEmpty)
        #expect(catalog.counts(of: key(0)) == nil)

        _ = try catalog.assignment(key: key(1), worker: members[0], members: members, membershipEpoch: 1, now: now)
        let again = catalog.checkOutForSync(task: .default, where: { _, _ in true })
        let rewound = catalog.rewind(task: .default, to: [:], members: members, membershipEpoch: 1, now: now)
        #expect(rewound.contains { if case .persist(.ledgerDropped(key(1))) = $0 { true } else { false } })
        #expect(catalog.checkIn(try #require(again.first?.1), key: key(1), synced: []).isEmpty)
        #expect(catalog.ledgerCount == 0)
    }

    @Test("ledgers being built count as unfinished epochs: many new epochs asked at once start at most three builds")
    func buildsCountAsUnfinished() throws {
        let (catalog, _) = try catalog()
        let building = [key(0), key(1), key(2)]
        // The epoch being built itself may be joined (its build is shared).
        #expect(try catalog.ledgerToCreate(key(1), building: building) != nil)
        let tooMany = #expect(throws: CoreError.self) { try catalog.ledgerToCreate(key(3), building: building) }
        #expect(tooMany?.code == .failedPrecondition)
        #expect(tooMany?.message.contains("3 epochs of d in task default are unfinished (0, 1, 2)") == true)
        // The lead over the newest epoch counts builds too.
        let farAhead = #expect(throws: CoreError.self) { try catalog.ledgerToCreate(key(500), building: [key(0)]) }
        #expect(farAhead?.code == .invalidArgument)
        // Builds of other datasets or tasks do not count.
        let others = [
            LedgerKey(task: try TaskID("t"), dataset: "d", epoch: 0), LedgerKey(task: .default, dataset: "e", epoch: 0),
        ]
        #expect(try catalog.ledgerToCreate(key(3), building: others + [key(0), key(1)]) != nil)
    }

    @Test("finished epochs beyond the newest three are dropped; unfinished ones never are")
    mutating func retention() throws {
        var (catalog, workers) = try catalog()
        for epoch: Int64 in 0..<5 { try finish(&catalog, epoch: epoch, worker: workers[0]) }
        #expect(catalog.summaries(of: "d").map(\.key.epoch) == [2, 3, 4])
        let old = #expect(throws: CoreError.self) {
            try catalog.assignment(key: key(0), worker: workers[0], members: workers, membershipEpoch: 1, now: now)
        }
        #expect(old?.message.contains("older than the retained epochs") == true)

        // Three unfinished epochs at once: a fourth is refused, and nothing unfinished was dropped for it.
        for epoch: Int64 in [10, 11, 12] {
            _ = try catalog.assignment(
                key: key(epoch), worker: workers[0], members: workers, membershipEpoch: 1, now: now)
        }
        #expect(catalog.summaries(of: "d").map(\.key.epoch) == [10, 11, 12])
        let tooMany = #expect(throws: CoreError.self) {
            try catalog.assignment(key: key(13), worker: workers[0], members: workers, membershipEpoch: 1, now: now)
        }
        #expect(tooMany?.code == .failedPrecondition)
        #expect(tooMany?.message.contains("3 epochs of d in task default are unfinished (10, 11, 12)") == true)
    }

    @Test("a new epoch far beyond the newest is refused; a dropped ledger makes room and is gone")
    func epochLeadAndDrop() throws {
        var (catalog, workers) = try catalog()
        let ask = { (catalog: inout DatasetCatalog, epoch: Int64) throws(CoreError) in
            _ = try catalog.assignment(
                key: key(epoch), worker: workers[0], members: workers, membershipEpoch: 1, now: now)
        }
        // The first epoch of a (task, dataset) may be any: a job may resume anywhere.
        try ask(&catalog, 7)
        for epoch in [Int64.max, 1 << 62, 7 + DatasetCatalog.maxEpochLead + 1] {
            let error = #expect(throws: CoreError.self) { try ask(&catalog, epoch) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("must be at most 100 beyond the newest epoch 7") == true)
        }
        try ask(&catalog, 7 + DatasetCatalog.maxEpochLead)
        try ask(&catalog, 0)
        #expect(catalog.summaries(of: "d").map(\.key.epoch) == [0, 7, 107])
        #expect(throws: CoreError.self) { try ask(&catalog, 8) }

        #expect(try catalog.dropLedger(key(107)) == [.persist(.ledgerDropped(key(107))), .progressChanged(key(107))])
        #expect(catalog.summaries(of: "d").map(\.key.epoch) == [0, 7])
        try ask(&catalog, 8)
        let missing = #expect(throws: CoreError.self) { try catalog.dropLedger(key(107)) }
        #expect(missing?.code == .notFound)
        let unknown = #expect(throws: CoreError.self) {
            try catalog.dropLedger(LedgerKey(task: .default, dataset: "nope", epoch: 0))
        }
        #expect(unknown?.code == .notFound)
    }

    @Test("registration is idempotent and conflicts are refused")
    func registration() throws {
        var catalog = DatasetCatalog()
        let spec = try DatasetSpec(name: "d", totalSamples: 10, shardSize: 2, shuffle: true, seed: 1)
        #expect(try catalog.register(spec, now: now).created)
        #expect(try !catalog.register(spec, now: now).created)
        #expect(throws: CoreError.self) {
            try catalog.register(
                try DatasetSpec(name: "d", totalSamples: 10, shardSize: 5, shuffle: true, seed: 1), now: now)
        }
        #expect(throws: CoreError.self) {
            try DatasetSpec(name: "huge", totalSamples: 1 << 40, shardSize: 1, shuffle: false, seed: 0)
        }
    }
}

@Suite("Dataset catalog limits")
struct DatasetCatalogLimitTests {
    @Test("beyond maxDatasets, new datasets are refused; registering a known one again is still fine")
    func maxDatasets() throws {
        var catalog = DatasetCatalog()
        let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)
        let spec = { (name: String) throws in
            try DatasetSpec(name: name, totalSamples: 10, shardSize: 5, shuffle: false, seed: 0)
        }
        for index in 0..<DatasetCatalog.maxDatasets { _ = try catalog.register(try spec("d\(index)"), now: now) }
        let error = #expect(throws: CoreError.self) { try catalog.register(try spec("extra"), now: now) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message == "at most 10000 datasets can be registered: this coordinator is full")
        #expect(try !catalog.register(try spec("d0"), now: now).created)
    }
}

@Suite("Dataset catalog: directives")
struct DatasetCatalogDirectiveTests {
    let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)

    @Test("changes are persisted and progress is announced only when something changed; membership moves shards")
    func directives() throws {
        var catalog = DatasetCatalog()
        let spec = try DatasetSpec(name: "d", totalSamples: 4, shardSize: 1, shuffle: false, seed: 0)
        let registered = try catalog.register(spec, now: now)
        #expect(registered.directives == [.persist(.datasetRegistered(registered.record))])
        #expect(try catalog.register(spec, now: now).directives.isEmpty, "registering again changes nothing")

        let (a, b) = (try WorkerID("a"), try WorkerID("b"))
        let key = LedgerKey(task: .default, dataset: "d", epoch: 0)
        let first = try catalog.assignment(key: key, worker: a, members: [a, b], membershipEpoch: 1, now: now)
        #expect(first.directives.last == .progressChanged(key))
        #expect(first.directives.changes.contains { if case .ledgerCreated = $0 { true } else { false } })

        let shard = try #require(first.leases.first).shard
        let report = try catalog.report(key: key, worker: a, membershipEpoch: 1, shard: shard, consumed: 1)
        #expect(report.directives.last == .progressChanged(key) && report.record.state == .done)
        let again = try catalog.report(key: key, worker: a, membershipEpoch: 1, shard: shard, consumed: 1)
        #expect(again.directives.isEmpty, "a repeated report is a no-op")

        // b's shards move to a when b leaves; a ledger's moves are durable changes, not progress.
        let moved = catalog.onMembershipChange(task: .default, members: [a], membershipEpoch: 2)
        #expect(!moved.isEmpty && moved.allSatisfy { if case .persist = $0 { true } else { false } })

        // A shard that moved is SHARD_MOVED for its old owner.
        let leases = try catalog.assignment(key: key, worker: a, members: [a], membershipEpoch: 2, now: now).leases
        let lost = try #require(leases.last)
        let refused = #expect(throws: CoreError.self) {
            try catalog.report(key: key, worker: b, membershipEpoch: 1, shard: lost.shard, consumed: 1)
        }
        #expect(refused?.reason == .shardMoved && refused?.code == .failedPrecondition)
    }
}
