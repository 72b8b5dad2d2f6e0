import Testing

@testable import RuntimeCore

@Suite("Barriers")
struct BarrierTableTests {
    let key = BarrierKey(task: .default, name: "epoch-sync")
    let members = (0..<4).map { try! WorkerID("w\($0)") }
    var table = BarrierTable(maxPayloadBytes: 1 << 20)

    mutating func arrive(
        _ index: Int, expected: Int = 0, payload: ReduceInput? = nil, at seconds: Double = 0,
        timeout: Duration = .seconds(10), members: [WorkerID]? = nil, epoch: UInt64 = 4
    ) throws -> (id: BarrierID, directives: [BarrierTable.Directive]) {
        let members = members ?? self.members
        return try table.onArrive(
            key, worker: members[index],
            arrival: BarrierArrival(expected: expected, timeout: timeout, payload: payload),
            seenEpoch: epoch, membershipEpoch: 4, members: members, now: .milliseconds(Int64(seconds * 1000)))
    }

    func release(_ directives: [BarrierTable.Directive]) -> BarrierRelease? {
        guard case .release(_, let release, _)? = directives.first else { return nil }
        return release
    }

    func failure(_ directives: [BarrierTable.Directive]) -> BarrierFailure? {
        guard case .fail(_, let failure)? = directives.first else { return nil }
        return failure
    }

    @Test("everyone arrives: one release with every participant by rank; the name is reusable")
    mutating func release() throws {
        for index in [2, 0, 3] { #expect(try arrive(index).directives.isEmpty) }
        let (id, directives) = try arrive(1)
        #expect(id.generation == 1)
        let released = try #require(release(directives))
        #expect(released.participants.map(\.rank) == [0, 1, 2, 3])
        #expect(released.result == nil)
        #expect(try arrive(0).id.generation == 2, "the next use is a new generation")
        #expect(table.snapshot(now: .zero).map(\.id.generation) == [2])
    }

    @Test("a duplicate arrival is idempotent")
    mutating func duplicate() throws {
        let first = try arrive(0)
        let again = try arrive(0)
        #expect(first.id == again.id && again.directives.isEmpty)
        #expect(table.snapshot(now: .zero).first?.arrived == 1)
    }

    @Test("a fixed expected count releases as soon as that many arrived")
    mutating func expectedCount() throws {
        _ = try arrive(3, expected: 2)
        let released = try #require(release(try arrive(1, expected: 2).directives))
        #expect(released.participants.map(\.worker.rawValue) == ["w1", "w3"])
        let impossible = #expect(throws: CoreError.self) { try arrive(0, expected: 5) }
        #expect(impossible?.message.hasPrefix("expected must be between 0 (every member) and the world size 4") == true)
    }

    @Test("payloads are reduced in rank order: sum, mean, max, min; float32 and float64")
    mutating func reductions() throws {
        let vectors: [[Double]] = [[1, 10, -1], [2, 20, -2], [4, 40, -4], [8, 80, -8]]
        for (op, expected) in [
            (ReduceOp.sum, [15.0, 150, -15]), (.mean, [3.75, 37.5, -3.75]), (.max, [8, 80, -1]), (.min, [1, 10, -8]),
        ] {
            var directives: [BarrierTable.Directive] = []
            for index in 0..<4 {
                directives = try arrive(index, payload: ReduceInput(op: op, vector: .float64(vectors[index])))
                    .directives
            }
            #expect(release(directives)?.result == ReduceInput(op: op, vector: .float64(expected)), "\(op)")
        }
        var directives: [BarrierTable.Directive] = []
        for index in 0..<4 {
            let payload = ReduceInput(op: .sum, vector: .float32(vectors[index].map(Float.init)))
            directives = try arrive(index, payload: payload).directives
        }
        #expect(release(directives)?.result == ReduceInput(op: .sum, vector: .float32([15, 150, -15])))
    }

    @Test("participants that disagree on the reduce fail everyone with INVALID_ARGUMENT")
    mutating func mismatch() throws {
        _ = try arrive(0, payload: ReduceInput(op: .sum, vector: .float32([1, 2])))
        let failed = try #require(
            failure(try arrive(1, payload: ReduceInput(op: .sum, vector: .float32([1, 2, 3]))).directives))
        #expect(failed.code == .invalidArgument)
        #expect(failed.message.contains("rank 1 (w1) sent SUM of 3 float32, rank 0 (w0) sent SUM of 2 float32"))
        _ = try arrive(0, payload: ReduceInput(op: .sum, vector: .float32([1])))
        #expect(failure(try arrive(2, payload: ReduceInput(op: .mean, vector: .float32([1]))).directives) != nil)
        _ = try arrive(0, payload: ReduceInput(op: .sum, vector: .float64([1])))
        #expect(failure(try arrive(2).directives)?.message.contains("sent no payload") == true)
        _ = try arrive(0, expected: 2)
        #expect(failure(try arrive(1).directives)?.message.contains("expected=0 (every member)") == true)
        #expect(table.snapshot(now: .zero).isEmpty)
    }

    @Test("a departure aborts the generation, naming the missing ranks and workers")
    mutating func abortOnDeath() throws {
        _ = try arrive(0)
        _ = try arrive(2)
        let survivors = [members[0], members[1], members[2]]
        let directives = table.onMembershipChange(task: .default, members: survivors, reason: "w3 declared dead")
        let failed = try #require(failure(directives))
        #expect(failed.code == .aborted)
        #expect(
            failed.missing == [RankedWorker(rank: 1, worker: members[1]), RankedWorker(rank: 3, worker: members[3])])
        #expect(failed.message.contains("(w3 declared dead); missing rank 1 (w1), rank 3 (w3)"))
        #expect(table.onMembershipChange(task: .default, members: survivors, reason: "again").isEmpty)
    }

    @Test("fixed-count barriers survive joins and the death of workers that had not arrived, while they can complete")
    mutating func fixedCountSurvives() throws {
        _ = try arrive(0, expected: 2)
        #expect(
            table.onMembershipChange(task: .default, members: members + [try WorkerID("w9")], reason: "join").isEmpty)
        #expect(table.onMembershipChange(task: .default, members: Array(members.prefix(3)), reason: "w3 died").isEmpty)
        let failed = try #require(
            failure(table.onMembershipChange(task: .default, members: [members[1]], reason: "w0 left")))
        #expect(failed.missing == [RankedWorker(rank: 0, worker: members[0])])
    }

    @Test("a timeout fails everyone with DEADLINE_EXCEEDED, naming who never came")
    mutating func timeout() throws {
        _ = try arrive(0, at: 0, timeout: .seconds(10))
        _ = try arrive(1, at: 1, timeout: .seconds(5))
        #expect(table.onTick(now: .milliseconds(5999)).isEmpty)
        let failed = try #require(failure(table.onTick(now: .seconds(6))))
        #expect(failed.code == .deadlineExceeded)
        #expect(failed.missing.map(\.rank) == [2, 3])
        #expect(failed.message.contains("2 of 4 arrived; missing rank 2 (w2), rank 3 (w3)"))
    }

    @Test("stale epochs, non-members and oversized payloads are refused to the caller only")
    mutating func refusals() throws {
        _ = try arrive(0)
        let stale = #expect(throws: CoreError.self) { try arrive(1, epoch: 3) }
        #expect(stale?.code == .failedPrecondition)
        let ahead = #expect(throws: CoreError.self) { try arrive(1, epoch: 9) }
        #expect(ahead?.code == .invalidArgument)
        let big = ReduceInput(op: .sum, vector: .float64([Double](repeating: 0, count: (1 << 17) + 1)))
        let tooBig = #expect(throws: CoreError.self) { try arrive(1, payload: big) }
        #expect(tooBig?.code == .resourceExhausted)
        #expect(table.snapshot(now: .zero).first?.arrived == 1, "the open generation is untouched")
    }

    @Test("ever new names do not grow the table: counters of names with no open generation are forgotten")
    mutating func namesAreBounded() throws {
        let open = BarrierKey(task: .default, name: "held")
        _ = try table.onArrive(
            open, worker: members[0], arrival: BarrierArrival(expected: 2, timeout: .seconds(60), payload: nil),
            seenEpoch: 4, membershipEpoch: 4, members: members, now: .zero)
        for index in 0..<(3 * BarrierTable.maxRememberedNames) {
            let key = BarrierKey(task: .default, name: "name-\(index)")
            let (id, directives) = try table.onArrive(
                key, worker: members[0], arrival: BarrierArrival(expected: 1, timeout: .seconds(1), payload: nil),
                seenEpoch: 4, membershipEpoch: 4, members: members, now: .zero)
            #expect(id.generation == 1 && release(directives) != nil)
            #expect(table.rememberedNames <= BarrierTable.maxRememberedNames + 1)
        }
        // The open generation survived every pass and still releases.
        let (id, directives) = try table.onArrive(
            open, worker: members[1], arrival: BarrierArrival(expected: 2, timeout: .seconds(60), payload: nil),
            seenEpoch: 4, membershipEpoch: 4, members: members, now: .zero)
        #expect(id.generation == 1 && release(directives)?.participants.count == 2)
        // A name still remembered keeps counting.
        #expect(try arrive(0, expected: 1).id.generation == 1)
        #expect(try arrive(0, expected: 1).id.generation == 2)
    }
}

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("percentiles come from log buckets, capped by the largest observation")
    func percentiles() {
        var histogram = LatencyHistogram()
        #expect(histogram.percentile(0.5) == nil)
        for millis in 1...100 { histogram.record(.milliseconds(Int64(millis))) }
        #expect(histogram.count == 100)
        #expect(abs(histogram.sum - 5.05) < 1e-9)
        let p50 = try! #require(histogram.percentile(0.5))
        #expect(p50 >= 0.05 && p50 <= 0.0563, "p50 \(p50)")
        #expect(histogram.percentile(0.99)! <= 0.1)
        #expect(histogram.percentile(1) == 0.1)
    }
}
