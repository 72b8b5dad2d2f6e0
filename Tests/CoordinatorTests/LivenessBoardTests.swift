import Coordinator
import RuntimeCore
import Testing

@Suite("LivenessBoard: when each worker's latest heartbeat arrived, between two ticks")
struct LivenessBoardTests {
    @Test("keeps each worker's latest arrival (a late one never moves it back); a take empties the board")
    func latestArrivals() throws {
        let board = LivenessBoard()
        let (a, b) = (try WorkerID("a"), try WorkerID("b"))
        board.record(a, at: .seconds(5))
        board.record(b, at: .seconds(3))
        board.record(a, at: .seconds(4))
        board.record(b, at: .seconds(6))
        #expect(board.take() == [a: .seconds(5), b: .seconds(6)])
        #expect(board.take().isEmpty)
        // The next board is as empty as the first, whoever heartbeats next (it only starts with room for as many).
        for index in 0..<1000 { board.record(try WorkerID("w\(index)"), at: .seconds(Int64(index))) }
        board.record(a, at: .seconds(1))
        let taken = board.take()
        let last = try WorkerID("w999")
        #expect(taken.count == 1001 && taken[last] == .seconds(999) && taken[a] == .seconds(1))
    }

    @Test("between two ticks it records at most its capacity of workers; those recorded still move on")
    func bounded() throws {
        let board = LivenessBoard()
        let ids = try (0...LivenessBoard.capacity).map { try WorkerID("w\($0)") }
        for id in ids { board.record(id, at: .seconds(1)) }
        board.record(ids[0], at: .seconds(2))
        board.record(ids[0], at: .seconds(0))
        let taken = board.take()
        #expect(taken.count == LivenessBoard.capacity)
        #expect(taken[ids[LivenessBoard.capacity]] == nil, "one past the capacity is left to the engine")
        #expect(taken[ids[0]] == .seconds(2), "a recorded worker moves on with the board full")
        board.record(ids[LivenessBoard.capacity], at: .seconds(3))
        #expect(board.take() == [ids[LivenessBoard.capacity]: .seconds(3)])
    }
}
