import DataShard
import RuntimeCore
import Storage
import Testing

/// `rows` shard records of task `task`'s ledger of dataset "big", shards `from..<from+rows`.
func shards(_ rows: Int, from: Int = 0, task: String) throws -> StateChange {
    let key = LedgerKey(task: try TaskID(task), dataset: "big", epoch: 0)
    return .data(
        .shardsChanged(
            key,
            (from..<from + rows).map {
                ShardRecord(shard: Int64($0), owner: nil, leaseEpoch: 1, consumed: 0, state: .pending)
            }))
}

/// The shard ids of `task`'s rows in each batch.
func rows(of task: String, in batches: [[StateChange]]) -> [[Int64]] {
    batches.map { batch in
        batch.flatMap { change -> [Int64] in
            if case .data(.shardsChanged(let key, let records)) = change, key.task.rawValue == task {
                return records.map(\.shard)
            }
            return []
        }
    }
}

@Suite("Write-behind queue: bulk rows are fair across tasks")
struct WriteBehindQueueFairnessTests {
    @Test("a task's few progress rows enqueued behind another task's huge backlog go in the next transaction")
    func smallTaskOvertakesBacklog() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        let backlog = queue.enqueue(try shards(100, task: "a"))
        let progress = queue.enqueue(try shards(2, from: 500, task: "b"))
        #expect(backlog.lane == .bulk && progress.lane == .bulk)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            try await queue.waitUntilDurable(progress)
            #expect(!queue.isDurable(backlog), "b did not wait for a's ten transactions")
            // Rows of b enqueued while one of a's transactions is in flight wait for that one, and go in the next.
            try await waitFor { !committer.batches.isEmpty }
            let late = queue.enqueue(try shards(1, from: 600, task: "b"))
            let startedBefore = committer.batches.count
            try await queue.waitUntilDurable(late)
            let written = rows(of: "b", in: committer.batches).firstIndex { $0.contains(600) }
            #expect(written.map { $0 + 1 <= startedBefore + 1 } == true, "batch \(String(describing: written))")
            try await queue.waitUntilDurable(backlog)
            queue.finish()
            try await group.waitForAll()
        }
        let batches = committer.batches
        #expect(rows(of: "b", in: batches)[0] == [500, 501], "b's rows went in the first transaction")
        #expect(rows(of: "a", in: batches)[0].count == 8, "a took the rest of it")
        #expect(batches.allSatisfy { $0.reduce(0) { $0 + $1.cost } <= 10 })
        #expect(rows(of: "a", in: batches).joined().elementsEqual((0..<100).map(Int64.init)), "a's rows in order")
    }

    @Test("tasks with backlogs share each transaction equally, each in its own order")
    func backlogsShare() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 12, commit: committer.commit)
        var tickets: [WriteBehindQueue.Ticket] = []
        for piece in 0..<4 {
            for task in ["a", "b", "c"] { tickets.append(queue.enqueue(try shards(15, from: piece * 15, task: task))) }
        }
        queue.finish()
        await queue.run()
        for ticket in tickets { #expect(queue.isDurable(ticket)) }
        let batches = committer.batches
        #expect(batches.count == 15, "180 rows, 12 per transaction")
        for task in ["a", "b", "c"] {
            let own = rows(of: task, in: batches)
            #expect(own.dropLast().allSatisfy { $0.count == 4 }, "\(task): \(own.map(\.count))")
            #expect(own.joined().elementsEqual((0..<60).map(Int64.init)), "\(task)'s rows in order")
        }
    }

    @Test("with more tasks pending than rows in a transaction, each gets a row in turn")
    func moreTasksThanRows() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 4, commit: committer.commit)
        let tasks = ["a", "b", "c", "d", "e", "f"]
        for task in tasks { _ = queue.enqueue(try shards(3, task: task)) }
        queue.finish()
        await queue.run()
        let batches = committer.batches
        #expect(batches.count == 5, "18 rows, 4 per transaction")
        for task in tasks {
            let own = rows(of: task, in: batches)
            #expect(own.prefix(2).joined().count >= 1, "\(task) had a row in the first two transactions")
            #expect(own.joined().elementsEqual([0, 1, 2]), "\(task)'s rows in order")
        }
    }

    @Test("a dataset registration (no task) is written no later than the task rows enqueued after it")
    func untaskedChangesFirst() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        _ = queue.enqueue(try shards(40, task: "a"))
        let spec = try DatasetSpec(name: "d", totalSamples: 10, shardSize: 1, shuffle: false, seed: 0)
        let registered = StateChange.data(.datasetRegistered(DatasetRecord(spec: spec, registeredAtMillis: 1)))
        let dataset = queue.enqueue(registered)
        let ledger = queue.enqueue(try shards(3, from: 100, task: "b"))
        #expect(!queue.isDurable(dataset))
        queue.finish()
        await queue.run()
        #expect(queue.isDurable(dataset) && queue.isDurable(ledger))
        let first = committer.batches[0]
        #expect(first.contains(registered), "the registration went in the first transaction")
        #expect(rows(of: "b", in: [first]) == [[100, 101, 102]])
        let registration = first.firstIndex(of: registered)
        let ledgerRows = first.firstIndex { $0 != registered && $0.bulkTask?.rawValue == "b" }
        #expect(registration != nil && ledgerRows != nil && registration! < ledgerRows!, "in enqueue order")
    }

    @Test("a failed batch fails the waiters of each task's changes in it; both are retried, in order")
    func failureAcrossTasks() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        committer.failNext(1)
        let a = queue.enqueue(try shards(30, task: "a"))
        let b = queue.enqueue(try shards(2, from: 50, task: "b"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            let error = await #expect(throws: StorageError.self) { try await queue.waitUntilDurable(b) }
            #expect(error?.message == "disk full")
            // Until the retry (after a backoff) succeeds, waiting fails at once: poll instead.
            try await waitFor { queue.isDurable(a) && queue.isDurable(b) }
            queue.finish()
            try await group.waitForAll()
        }
        #expect(rows(of: "a", in: committer.batches).joined().elementsEqual((0..<30).map(Int64.init)))
        #expect(rows(of: "b", in: committer.batches).joined().elementsEqual([50, 51]))
    }
}

/// Polls `condition` every millisecond, for at most 10 s.
func waitFor(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition not met within 10 s")
            return
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}
