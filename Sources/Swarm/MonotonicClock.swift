import Foundation

/// `CLOCK_MONOTONIC` in nanoseconds: a clock two processes on one machine share (the recovery scenario compares its
/// own instants with its probe's, with when the coordinator's ready line was read, and with when its swarm's
/// connections were attempted and made).
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
