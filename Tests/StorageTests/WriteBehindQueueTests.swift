import DataShard
import RuntimeCore
import Storage
import Synchronization
import Testing

/// Records every batch the queue commits; can be told to fail.
final class RecordingCommitter: Sendable {
    private let state = Mutex<(batches: [[StateChange]], failuresLeft: Int, gate: Bool)>(([], 0, false))

    var batches: [[StateChange]] { state.withLock { $0.batches } }

    func failNext(_ count: Int) { state.withLock { $0.failuresLeft = count } }

    func commit(_ changes: [StateChange]) async throws(StorageError) {
        let fail = state.withLock { state in
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                return true
            }
            state.batches.append(changes)
            return false
        }
        // Long enough that concurrent enqueues pile up behind the batch in flight.
        try? await Task.sleep(for: .milliseconds(20))
        if fail { throw StorageError(.unavailable, "disk full") }
    }
}

func change(_ epoch: UInt64) -> StateChange {
    .membership(MembershipChange(epochs: [.default: epoch]))
}

@Suite("Write-behind queue")
struct WriteBehindQueueTests {
    @Test("changes enqueued while a batch is in flight are committed together, in order")
    func groupCommit() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(commit: committer.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            let first = queue.enqueue(change(1))
            try await Task.sleep(for: .milliseconds(5))
            let tickets = (2...50).map { queue.enqueue(change(UInt64($0))) }
            try await queue.waitUntilDurable(first)
            try await queue.waitUntilDurable(tickets.last!)
            queue.finish()
            try await group.waitForAll()
        }
        let batches = committer.batches
        #expect(batches.flatMap { $0 } == (1...50).map { change(UInt64($0)) })
        #expect(batches.count <= 3, "49 changes behind one slow batch share one or two transactions: \(batches.count)")
    }

    @Test("a failed batch fails its waiters, stays queued, and is written on retry")
    func failureAndRetry() async throws {
        let committer = RecordingCommitter()
        committer.failNext(1)
        let queue = WriteBehindQueue(commit: committer.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            let ticket = queue.enqueue(change(1))
            let error = await #expect(throws: StorageError.self) { try await queue.waitUntilDurable(ticket) }
            #expect(error?.message == "disk full")
            let next = queue.enqueue(change(2))
            try await queue.waitUntilDurable(next)
            try await queue.waitUntilDurable(ticket)
            queue.finish()
            try await group.waitForAll()
        }
        #expect(committer.batches.flatMap { $0 } == [change(1), change(2)])
    }

    @Test("finish writes what is pending; later waiters are told the queue stopped")
    func finishDrains() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(commit: committer.commit)
        let ticket = queue.enqueue(change(1))
        queue.finish()
        await queue.run()
        try await queue.waitUntilDurable(ticket)
        #expect(committer.batches == [[change(1)]])
        let late = queue.enqueue(change(2))
        let error = await #expect(throws: StorageError.self) { try await queue.waitUntilDurable(late) }
        #expect(error?.code == .unavailable)
    }

    @Test("waiting for ticket 0 (nothing enqueued yet) returns at once")
    func nothingToWaitFor() async throws {
        let queue = WriteBehindQueue(commit: RecordingCommitter().commit)
        #expect(queue.lastTicket.sequence == 0)
        try await queue.waitUntilDurable(queue.lastTicket)
    }
}

@Suite("Write-behind queue: cancellation")
struct WriteBehindQueueCancellationTests {
    @Test("a cancelled flusher writes what is pending and returns")
    func cancelled() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(commit: committer.commit)
        let flusher = Task { _ = await queue.run() }
        try await queue.waitUntilDurable(queue.enqueue(change(1)))
        let pending = queue.enqueue(change(2))
        flusher.cancel()
        await flusher.value
        #expect(queue.isDurable(pending))
        #expect(committer.batches.flatMap { $0 } == [change(1), change(2)])
    }
}

/// `rows` shard records of one ledger, shards `from..<from+rows`.
func shards(_ rows: Int, from: Int = 0) -> StateChange {
    let key = LedgerKey(task: .default, dataset: "big", epoch: 0)
    return .data(
        .shardsChanged(
            key,
            (from..<from + rows).map {
                ShardRecord(shard: Int64($0), owner: nil, leaseEpoch: 1, consumed: 0, state: .pending)
            }))
}

/// The shard records (of every `shardsChanged`) and the other changes of a list of batches, flattened in order.
func rows(_ batches: [[StateChange]]) -> [Int64] {
    batches.joined().flatMap { change -> [Int64] in
        if case .data(.shardsChanged(_, let records)) = change { return records.map(\.shard) }
        return []
    }
}

@Suite("Write-behind queue: lanes and bounded transactions")
struct WriteBehindQueueLaneTests {
    @Test("a membership change enqueued behind a huge ledger change waits for one bounded transaction, not for it")
    func membershipOvertakesBulk() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 1000, commit: committer.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let big = queue.enqueue(shards(20_000))
            let small = queue.enqueue(change(1))
            #expect(big.lane == .bulk && small.lane == .membership)
            group.addTask { await queue.run() }
            try await queue.waitUntilDurable(small)
            #expect(!queue.isDurable(big), "the membership change did not wait for the 21 transactions of the ledger")
            try await queue.waitUntilDurable(big)
            queue.finish()
            try await group.waitForAll()
        }
        let batches = committer.batches
        #expect(batches[0].contains(change(1)), "written in the first transaction: \(batches.map(\.count))")
        #expect(batches.count == 21, "999 rows beside the membership change, then 1,000 per transaction")
        #expect(batches.allSatisfy { rows([$0]).count <= 1000 })
        #expect(rows(batches) == (0..<20_000).map(Int64.init), "every row once, in order")
    }

    @Test("a bulk change never overtakes an earlier membership change, and each lane keeps its order")
    func ordering() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 100, commit: committer.commit)
        let tickets = [
            queue.enqueue(change(1)), queue.enqueue(shards(250)), queue.enqueue(change(2)),
            queue.enqueue(shards(50, from: 250)), queue.enqueue(change(3)),
        ]
        queue.finish()
        await queue.run()
        for ticket in tickets { #expect(queue.isDurable(ticket)) }
        let flat = Array(committer.batches.joined())
        let memberships = flat.filter { if case .membership = $0 { true } else { false } }
        #expect(memberships == [change(1), change(2), change(3)])
        #expect(rows(committer.batches) == (0..<300).map(Int64.init))
        // The first membership change is in the first transaction, before any ledger row.
        #expect(committer.batches[0].first == change(1))
    }

    @Test("a waiter of a split change is woken only once its last piece is written")
    func splitChangeDurableAtTheEnd() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        let big = queue.enqueue(shards(35))
        let after = queue.enqueue(shards(1, from: 35))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            try await queue.waitUntilDurable(big)
            #expect(rows(committer.batches).count >= 35, "all four pieces written")
            try await queue.waitUntilDurable(after)
            queue.finish()
            try await group.waitForAll()
        }
        #expect(committer.batches.map { rows([$0]).count } == [10, 10, 10, 6])
    }

    @Test("a failed piece fails its waiter and is retried in order")
    func failedPieceRetried() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        committer.failNext(1)
        let big = queue.enqueue(shards(25))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            let error = await #expect(throws: StorageError.self) { try await queue.waitUntilDurable(big) }
            #expect(error?.message == "disk full")
            let next = queue.enqueue(change(1))
            try await queue.waitUntilDurable(next)
            try await queue.waitUntilDurable(big)
            queue.finish()
            try await group.waitForAll()
        }
        #expect(rows(committer.batches) == (0..<25).map(Int64.init))
    }

    @Test("limitWrites bounds the flusher: what is still pending when the budget runs out is dropped, its waiters told")
    func limitedShutdown() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(maxRowsPerTransaction: 10, commit: committer.commit)
        // 1,000 transactions of 20 ms each: 20 s to write all of it.
        let big = queue.enqueue(shards(10_000))
        queue.limitWrites(to: .milliseconds(200))
        queue.finish()
        let dropped = await queue.run()
        #expect(dropped == 1, "the rest of the one big change")
        #expect(!committer.batches.isEmpty && rows(committer.batches).count < 10_000)
        let error = await #expect(throws: StorageError.self) { try await queue.waitUntilDurable(big) }
        #expect(error?.code == .unavailable)
    }
}
