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
        #expect(queue.lastTicket == 0)
        try await queue.waitUntilDurable(queue.lastTicket)
    }
}

@Suite("Write-behind queue: cancellation")
struct WriteBehindQueueCancellationTests {
    @Test("a cancelled flusher writes what is pending and returns")
    func cancelled() async throws {
        let committer = RecordingCommitter()
        let queue = WriteBehindQueue(commit: committer.commit)
        let flusher = Task { await queue.run() }
        try await queue.waitUntilDurable(queue.enqueue(change(1)))
        let pending = queue.enqueue(change(2))
        flusher.cancel()
        await flusher.value
        #expect(queue.isDurable(pending))
        #expect(committer.batches.flatMap { $0 } == [change(1), change(2)])
    }
}
