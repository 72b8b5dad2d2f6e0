public import RuntimeCore
import Synchronization

/// When each worker's latest heartbeat arrived, written where heartbeats arrive (the gRPC handlers, before the
/// heartbeat queues for the engine) and read by the failure detector at every tick without waiting behind the
/// engine's work. A worker whose heartbeats arrive is never judged silent because the engine was busy with another
/// call (a big dataset's ledger, a slow write).
///
/// Memory stays bounded: every tick takes what was written, and between two ticks at most ``capacity`` workers are
/// recorded (a heartbeat of one more is counted when the engine handles it, as before).
public final class LivenessBoard: Sendable {
    /// Most workers recorded between two ticks: as many as the membership tracks.
    public static let capacity = Membership.maxWorkers

    private let arrivals = Mutex<[WorkerID: Duration]>([:])

    /// An empty board.
    public init() {}

    /// `worker`'s heartbeat arrived at `moment` (monotonic).
    public func record(_ worker: WorkerID, at moment: Duration) {
        arrivals.withLock { arrivals in
            if arrivals.count < Self.capacity {
                // One lookup, inserting or updating in place (every heartbeat comes here).
                Self.keepLatest(&arrivals[worker, default: moment], moment)
            } else if let previous = arrivals[worker] {
                arrivals[worker] = max(previous, moment)
            }
        }
    }

    /// Everything recorded since the last call, emptying the board. The next board starts with room for as many
    /// workers, so that it does not grow (and rehash) again while the same workers heartbeat.
    public func take() -> [WorkerID: Duration] {
        arrivals.withLock { arrivals in
            defer { arrivals = Dictionary(minimumCapacity: arrivals.count) }
            return arrivals
        }
    }

    private static func keepLatest(_ recorded: inout Duration, _ moment: Duration) {
        recorded = max(recorded, moment)
    }
}
